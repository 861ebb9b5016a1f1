/**
 * Between the Project resource and the runtime's protobuf messages, without a cluster: the
 * SubmitProject command, and the status written from the runtime's ProjectStatus.
 */
import { BudgetAction, Deliverable, ProjectPhase, type ProjectStatus as RuntimeStatus } from '@troupe/proto';
import { describe, expect, it } from 'vitest';
import type { Project } from '../api/v1alpha1/project.types.js';
import type { Workflow } from '../api/v1alpha1/workflow.types.js';
import { commandIds, phaseChangeOf, submitCommand, syncedStatus } from './project.mapping.js';

const NOW = new Date('2026-11-25T10:00:00Z');

function project(spec: Partial<Project['spec']> = {}, status?: Project['status']): Project {
  return {
    metadata: { name: 'storefront', namespace: 'acme', uid: 'u-1', generation: 2 },
    spec: { client: 'acme', brief: 'An online shop.', budget: { maxCostUSD: 5 }, ...spec },
    ...(status ? { status } : {}),
  };
}

function runtime(status: Partial<RuntimeStatus>): RuntimeStatus {
  return {
    phase: ProjectPhase.UNSPECIFIED,
    observedGeneration: 2,
    conditions: [],
    currentPhase: '',
    artifacts: [],
    lastSequence: 0,
    ...status,
  };
}

describe('submitCommand', () => {
  it('carries the whole spec, with the uid and generation that make the command id', () => {
    const submitted = project({
      workflow: 'hotfix',
      deliverables: ['code', 'tests'],
      budget: { maxCostUSD: 12.5, maxTokens: 2_000_000, onExceeded: 'Fail' },
      pools: { developer: 'senior-devs' },
      approvals: ['review'],
      approvalTimeout: '1h30m',
      priority: 80,
      deadline: '2026-12-24T18:00:00Z',
      suspend: true,
      delivery: { git: { url: 'https://git.example.com/acme/shop.git', branch: 'main', secretRef: { name: 'push' } } },
      notify: { webhooks: [{ url: 'https://hooks.example.com/troupe' }], email: ['cto@acme.example'] },
    });
    expect(submitCommand(submitted)).toEqual({
      namespace: 'acme',
      name: 'storefront',
      uid: 'u-1',
      generation: 2,
      spec: {
        client: 'acme',
        brief: 'An online shop.',
        workflow: 'hotfix',
        deliverables: [Deliverable.CODE, Deliverable.TESTS],
        budget: { maxCostUsd: 12.5, maxTokens: 2_000_000, onExceeded: BudgetAction.FAIL },
        pools: { developer: 'senior-devs' },
        approvals: ['review'],
        approvalTimeout: '1h30m',
        priority: 80,
        deadline: Date.parse('2026-12-24T18:00:00Z'),
        suspend: true,
        delivery: { git: { url: 'https://git.example.com/acme/shop.git', branch: 'main', secretRef: { name: 'push', key: '' } } },
        notify: { webhooks: [{ url: 'https://hooks.example.com/troupe', secretRef: undefined }], email: ['cto@acme.example'] },
      },
      workflowPhases: [],
    });
    expect(commandIds.submit(submitted)).toBe('submit/u-1/2');
    expect(commandIds.approve(submitted, 'architecture')).toBe('approve/u-1/architecture');
  });

  it('carries the phases of the Workflow resource the spec names, with their defaults filled in', () => {
    const hotfix: Workflow = {
      metadata: { name: 'hotfix', namespace: 'acme', generation: 1 },
      spec: {
        phases: [
          { name: 'implementation', role: 'developer', produces: ['code'] },
          { name: 'review', role: 'qa', needs: ['implementation'], approval: true, loop: { backTo: 'implementation', maxIterations: 2 } },
        ],
      },
    };
    expect(submitCommand(project({ workflow: 'hotfix' }), hotfix).workflowPhases).toEqual([
      { name: 'implementation', role: 'developer', needs: [], produces: ['code'], fanOut: false, approval: false, loop: undefined },
      {
        name: 'review',
        role: 'qa',
        needs: ['implementation'],
        produces: [],
        fanOut: false,
        approval: true,
        loop: { backTo: 'implementation', maxIterations: 2 },
      },
    ]);
  });

  it('pauses at the budget unless told to fail, and lets a gate wait without limit unless given a timeout', () => {
    expect(submitCommand(project()).spec?.budget?.onExceeded).toBe(BudgetAction.PAUSE);
    expect(submitCommand(project()).spec?.approvalTimeout).toBe('');
  });
});

describe('syncedStatus', () => {
  const accepted = {
    type: 'Accepted',
    status: 'True' as const,
    reason: 'Submitted',
    message: 'queued',
    observedGeneration: 2,
    lastTransitionTime: '2026-11-25T09:00:00Z',
  };

  it("copies phase, progress, cost, artifacts and times, beside the operator's Accepted", () => {
    const status = syncedStatus(
      project({}, { phase: 'Pending', observedGeneration: 2, conditions: [accepted] }),
      runtime({
        phase: ProjectPhase.RUNNING,
        currentPhase: 'implementation',
        progress: { tasksTotal: 10, tasksDone: 4, tasksFailed: 1, percent: 40 },
        cost: { usd: 0.12, tokensIn: 1000, tokensOut: 200, llmCalls: 6 },
        artifacts: [
          { name: 'requirements.md', kind: 'requirements', uri: 'troupe://a/requirements.md', sha256: 'a'.repeat(64), bytes: 120 },
          { name: 'draft', kind: 'code', uri: 'troupe://a/draft', sha256: '', bytes: 3 },
        ],
        startedAt: Date.parse('2026-11-25T09:30:00Z'),
      }),
      undefined,
      NOW,
    );
    expect(status).toMatchObject({
      phase: 'Running',
      observedGeneration: 2,
      currentPhase: 'implementation',
      progress: { tasksTotal: 10, tasksDone: 4, tasksFailed: 1, percent: 40 },
      cost: { usd: 0.12, tokensIn: 1000, tokensOut: 200, llmCalls: 6 },
      artifacts: [
        { name: 'requirements.md', kind: 'requirements', uri: 'troupe://a/requirements.md', sha256: 'a'.repeat(64), bytes: 120 },
        { name: 'draft', kind: 'code', uri: 'troupe://a/draft', bytes: 3 },
      ],
      startedAt: '2026-11-25T09:30:00Z',
    });
    const byType = Object.fromEntries(
      (status.conditions ?? []).map((condition) => [condition.type, `${condition.status} ${condition.reason}`]),
    );
    expect(byType).toEqual({
      Accepted: 'True Submitted',
      Running: 'True Running',
      AwaitingApproval: 'False NoApprovalPending',
      BudgetExceeded: 'False WithinBudget',
      Delivered: 'False NotDelivered',
      Failed: 'False NotFailed',
    });
    expect(status.conditions?.[0]).toEqual(accepted);
  });

  it('tells a waiting project how to approve it', () => {
    const status = syncedStatus(
      project(),
      runtime({ phase: ProjectPhase.AWAITING_APPROVAL, currentPhase: 'architecture' }),
      undefined,
      NOW,
    );
    expect(status.conditions?.find((condition) => condition.type === 'AwaitingApproval')).toMatchObject({
      status: 'True',
      reason: 'ApprovalRequired',
      message: 'architecture waits for approval: kubectl annotate project storefront troupe.dev/approve=architecture',
    });
  });

  it('says why a project paused or failed: from its last phase change, else from what is known', () => {
    const overBudget = syncedStatus(
      project(),
      runtime({ phase: ProjectPhase.PAUSED }),
      { phase: 'Paused', reason: 'BudgetExceeded', message: 'the project budget is spent' },
      NOW,
    );
    expect(overBudget.conditions?.find((condition) => condition.type === 'BudgetExceeded')).toMatchObject({
      status: 'True',
      reason: 'BudgetExceeded',
    });
    const suspended = syncedStatus(project({ suspend: true }), runtime({ phase: ProjectPhase.PAUSED }), undefined, NOW);
    expect(suspended.conditions?.find((condition) => condition.type === 'BudgetExceeded')).toMatchObject({
      status: 'False',
      reason: 'WithinBudget',
    });
    expect(suspended.conditions?.find((condition) => condition.type === 'Running')).toMatchObject({ status: 'False', reason: 'Paused' });
    const failed = syncedStatus(
      project(),
      runtime({ phase: ProjectPhase.FAILED }),
      { phase: 'Failed', reason: 'WorkflowNotFound', message: 'no such workflow' },
      NOW,
    );
    expect(failed.conditions?.find((condition) => condition.type === 'Failed')).toMatchObject({
      status: 'True',
      reason: 'WorkflowNotFound',
      message: 'no such workflow',
    });
    const timedOut = syncedStatus(
      project({ approvals: ['review'], approvalTimeout: '24h' }),
      runtime({ phase: ProjectPhase.FAILED, currentPhase: 'review' }),
      phaseChangeOf({
        id: 'acme/storefront#9',
        sequence: 9,
        occurredAt: NOW.getTime(),
        namespace: 'acme',
        project: 'storefront',
        event: {
          $case: 'projectFailed',
          value: { reason: 'ApprovalTimedOut', message: 'review was not approved within the approval timeout of 24h' },
        },
      }),
      NOW,
    );
    expect(timedOut.conditions?.find((condition) => condition.type === 'Failed')).toMatchObject({
      status: 'True',
      reason: 'ApprovalTimedOut',
      message: 'review was not approved within the approval timeout of 24h',
    });
    expect(timedOut.conditions?.find((condition) => condition.type === 'AwaitingApproval')).toMatchObject({ status: 'False' });
    // After a restart the stream's history is gone; the reason already written stays.
    const again = syncedStatus(
      { ...project(), status: failed },
      runtime({ phase: ProjectPhase.FAILED }),
      undefined,
      new Date('2026-11-25T12:00:00Z'),
    );
    expect(again.conditions?.find((condition) => condition.type === 'Failed')).toMatchObject({
      reason: 'WorkflowNotFound',
      lastTransitionTime: '2026-11-25T10:00:00Z',
    });
  });

  it('lets a condition the runtime reports replace the derived one, with a reason the CRD accepts', () => {
    const status = syncedStatus(
      project(),
      runtime({
        phase: ProjectPhase.RUNNING,
        conditions: [
          {
            type: 'Running',
            status: 'True',
            observedGeneration: 2,
            lastTransitionTime: Date.parse('2026-11-25T09:59:00Z'),
            reason: 'not camel case!',
            message: 'busy',
          },
        ],
      }),
      undefined,
      NOW,
    );
    expect(status.conditions?.filter((condition) => condition.type === 'Running')).toEqual([
      {
        type: 'Running',
        status: 'True',
        observedGeneration: 2,
        lastTransitionTime: '2026-11-25T09:59:00Z',
        reason: 'RuntimeReported',
        message: 'busy',
      },
    ]);
  });
});
