/**
 * Moving an archived project to another namespace, for `troupe import -n`: a project's key
 * (`<namespace>/<name>`) is in its actor's id, its journal and the URIs of its artefacts, and
 * in the ids and journals of its LLM calls (with the namespace of the pool that made them).
 * Everything else — the spec, the tasks, the ledger's sums — moves as it is.
 */
import type { ActorJournal } from '@troupe/proto';
import { jsonCodec, type ActorType, type Codec } from '../actors/actor.js';
import type { ArtifactRef, ProjectEvent, ProjectMessage, ProjectState } from '../domain/project.types.js';
import type { LlmCallEvent, LlmCallMessage, LlmCallReply, LlmCallState } from '../llm/journal.js';
import type { ReceivedArchive } from './archive.js';

/** The actor types whose journals an archive holds. */
export interface ArchivedActors {
  project: ActorType<ProjectState, ProjectMessage, ProjectEvent, unknown>;
  llmCall: ActorType<LlmCallState, LlmCallMessage, LlmCallEvent, LlmCallReply>;
}

/** The archive with its project in `namespace` instead. */
export function relocate(archive: ReceivedArchive, namespace: string, actors: ArchivedActors): ReceivedArchive {
  const { project } = archive.header;
  const from = project.namespace;
  const name = project.name;
  const fromKey = `${from}/${name}`;
  const toKey = `${namespace}/${name}`;
  const moveRef = (ref: ArtifactRef): ArtifactRef => ({ ...ref, uri: ref.uri.replace(`/${fromKey}/`, `/${toKey}/`) });
  // Call ids are `<pool namespace>/<pool>/<project key>/<project key>[/~<incarnation>]/<task>/<step>/<attempt>`.
  const moveId = (id: string): string => {
    const segments = id.split('/');
    if (segments[0] === from) segments[0] = namespace;
    for (let i = 1; i < segments.length - 1; i += 1) if (segments[i] === from && segments[i + 1] === name) segments[i] = namespace;
    return segments.join('/');
  };

  const journals = archive.journals.map((journal): ActorJournal => {
    if (journal.actorType === actors.project.type && journal.actorId === fromKey) {
      return rewrite(journal, toKey, actors.project.codec ?? jsonCodec, {
        state: (state: ProjectState) => ({ ...state, namespace, artifacts: state.artifacts.map(moveRef) }),
        event: (event: ProjectEvent): ProjectEvent => {
          if (event.type === 'submitted') return { ...event, namespace };
          if (event.type === 'task-succeeded') return { ...event, artifacts: event.artifacts.map(moveRef) };
          return event;
        },
      });
    }
    if (journal.actorType === actors.llmCall.type) {
      return rewrite(journal, moveId(journal.actorId), actors.llmCall.codec ?? jsonCodec, {
        state: (state: LlmCallState) =>
          state.result === undefined ? state : { ...state, result: { ...state.result, callId: moveId(state.result.callId) } },
        event: (event: LlmCallEvent): LlmCallEvent =>
          event.type === 'bought'
            ? { ...event, result: { ...event.result, callId: moveId(event.result.callId) }, account: { ...event.account, project: toKey } }
            : event,
      });
    }
    return journal;
  });
  return { ...archive, header: { ...archive.header, project: { ...project, namespace } }, journals };
}

function rewrite<S, E>(journal: ActorJournal, id: string, codec: Codec, move: { state(state: S): S; event(event: E): E }): ActorJournal {
  const recode = <T>(bytes: Uint8Array, change: (value: T) => T) => Buffer.from(codec.encode(change(codec.decode(bytes) as T)));
  return {
    ...journal,
    actorId: id,
    snapshot: journal.snapshot === undefined ? undefined : { ...journal.snapshot, state: recode(journal.snapshot.state, move.state) },
    events: journal.events.map((event) => recode(event, move.event)),
  };
}
