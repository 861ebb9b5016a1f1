/**
 * What the chaos suite checks once every project is Delivered, each check a list of the
 * problems it found (empty when all is well): the cost ledger, as the Project resources show it,
 * against what the LLM server itself sold; and each project's artefacts against the reference
 * delivery's, with the bytes behind each uri downloaded from a gateway, as a client would, and hashed.
 */
import { createHash } from 'node:crypto';
import type { Project } from '@troupe/operator';
import type { SimulatedServer } from '@troupe/runtime';
import type { DeliveredArtifact, Reference } from './chaos-company.js';

/** The ledger's sums over every project beside the LLM server's. */
export interface LedgerSummary {
  /** Σ status.cost of the projects. */
  ledger: { llmCalls: number; tokensIn: number; tokensOut: number; usd: number };
  /** Distinct calls the server sold (by call id), and their tokens. */
  sold: { calls: number; tokensIn: number; tokensOut: number };
  /** Completions the server sold in all: a call sold twice counts twice. */
  completions: number;
  /** Calls sold again for a call id sold before: bought by a node that died before it journaled the answer. */
  boughtAgain: number;
}

export interface Checked<S> {
  problems: string[];
  summary: S;
}

/** At most this many examples of one kind of problem are listed. */
const EXAMPLES = 5;

function costOf(project: Project) {
  const { usd = 0, tokensIn = 0, tokensOut = 0, llmCalls = 0 } = project.status?.cost ?? {};
  return { usd, tokensIn, tokensOut, llmCalls };
}

/**
 * The ledger matches the server when the calls and tokens the projects account for are exactly
 * the distinct calls the server sold, and each project spent what the reference spent. A call
 * the server sold twice (its buyer died before journaling the answer) is paid twice but is one
 * call of the project: it counts once in the ledger, and is reported as bought again.
 */
export function checkLedger(projects: readonly Project[], reference: Reference, llm: SimulatedServer): Checked<LedgerSummary> {
  const ledger = { llmCalls: 0, tokensIn: 0, tokensOut: 0, usd: 0 };
  const problems: string[] = [];
  const unlike: string[] = [];
  for (const project of projects) {
    const cost = costOf(project);
    ledger.llmCalls += cost.llmCalls;
    ledger.tokensIn += cost.tokensIn;
    ledger.tokensOut += cost.tokensOut;
    ledger.usd += cost.usd;
    const same =
      cost.llmCalls === reference.cost.llmCalls &&
      cost.tokensIn === reference.cost.tokensIn &&
      cost.tokensOut === reference.cost.tokensOut &&
      Math.abs(cost.usd - reference.cost.usd) < 1e-9;
    if (!same) unlike.push(`${project.metadata.name} ${JSON.stringify(cost)}`);
  }
  if (unlike.length > 0) {
    problems.push(
      `${unlike.length} projects did not spend what the reference did (${JSON.stringify(reference.cost)}), e.g. ${unlike.slice(0, EXAMPLES).join('; ')}`,
    );
  }
  const calls = [...llm.answeredCalls().values()];
  const sold = {
    calls: calls.length,
    tokensIn: calls.reduce((sum, call) => sum + call.inputTokens, 0),
    tokensOut: calls.reduce((sum, call) => sum + call.outputTokens, 0),
  };
  const { completions } = llm.stats();
  if (ledger.llmCalls !== sold.calls)
    problems.push(`the projects' ledger counts ${ledger.llmCalls} LLM calls; the server sold ${sold.calls} distinct calls`);
  if (ledger.tokensIn !== sold.tokensIn || ledger.tokensOut !== sold.tokensOut) {
    problems.push(
      `the projects' ledger counts ${ledger.tokensIn} tokens in and ${ledger.tokensOut} out; ` +
        `the server's distinct calls had ${sold.tokensIn} in and ${sold.tokensOut} out`,
    );
  }
  if (completions !== sold.calls + calls.reduce((sum, call) => sum + call.answers - 1, 0)) {
    problems.push(`the server sold ${completions} completions, not all with a call id`);
  }
  return { problems, summary: { ledger, sold, completions, boughtAgain: completions - sold.calls } };
}

const sameArtifact = (a: DeliveredArtifact, b: DeliveredArtifact) => a.kind === b.kind && a.sha256 === b.sha256 && a.bytes === b.bytes;

/** Where a client downloads an artefact: the gateway's HTTP API. */
export interface ArtifactSource {
  /** `http://host:port` of a gateway. */
  gateway: string;
  /** A bearer token of the projects' tenant. */
  token: string;
}

/**
 * No artefact missing or duplicated: each project lists each name once, exactly the
 * reference's set (same kinds, sizes and sha256), each under the uri of that project's artefact,
 * and the bytes a client downloads for each uri from the gateway hash to the sha256 listed.
 * Answers how many artefacts were checked.
 */
export async function checkArtifacts(projects: readonly Project[], reference: Reference, source: ArtifactSource): Promise<Checked<number>> {
  const problems: string[] = [];
  const expected = new Map(reference.artifacts.map((artifact) => [artifact.name, artifact]));
  let checked = 0;
  for (const project of projects) {
    const namespace = project.metadata.namespace ?? '';
    const name = project.metadata.name;
    const listed = project.status?.artifacts ?? [];
    const names = listed.map((artifact) => artifact.name);
    const twice = names.filter((artifact, i) => names.indexOf(artifact) !== i);
    if (twice.length > 0) problems.push(`${name} lists ${[...new Set(twice)].join(', ')} more than once`);
    const missing = [...expected.keys()].filter((artifact) => !names.includes(artifact));
    if (missing.length > 0) problems.push(`${name} lacks ${missing.join(', ')}`);
    const extra = names.filter((artifact) => !expected.has(artifact));
    if (extra.length > 0) problems.push(`${name} lists ${extra.join(', ')}, which the reference did not deliver`);
    for (const artifact of listed) {
      checked += 1;
      const want = expected.get(artifact.name);
      const delivered = { name: artifact.name, kind: artifact.kind, sha256: artifact.sha256 ?? '', bytes: artifact.bytes ?? -1 };
      if (want !== undefined && !sameArtifact(delivered, want))
        problems.push(`${name}'s ${artifact.name} is ${JSON.stringify(delivered)}, the reference's ${JSON.stringify(want)}`);
      const prefix = `troupe://artifacts/${namespace}/${name}/`;
      if (!artifact.uri.startsWith(prefix) || artifact.uri.slice(prefix.length) !== artifact.name) {
        problems.push(`${name}'s ${artifact.name} has the uri ${artifact.uri}, not ${prefix}${artifact.name}`);
        continue;
      }
      const response = await fetch(`${source.gateway}/api/projects/${namespace}/${name}/artifacts/${encodeURIComponent(artifact.name)}`, {
        headers: { authorization: `Bearer ${source.token}` },
      });
      if (response.status !== 200) {
        problems.push(`${name}'s ${artifact.name}: the gateway answered ${response.status} for ${artifact.uri}: ${await response.text()}`);
        continue;
      }
      const bytes = Buffer.from(await response.arrayBuffer());
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      if (sha256 !== artifact.sha256 || bytes.byteLength !== artifact.bytes) {
        problems.push(
          `${name}'s ${artifact.name}: the ${bytes.byteLength} bytes behind ${artifact.uri} hash to ${sha256}, listed as ${artifact.bytes} bytes ${artifact.sha256}`,
        );
      }
    }
  }
  return { problems, summary: checked };
}
