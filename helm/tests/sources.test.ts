/**
 * The chart keeps no definitions of its own where the repository has one: its CRDs are crds/
 * and its operator roles are operator/rbac/ (which the operator's RBAC test proves are exactly
 * what the operator uses). Helm packages only files inside the chart, so both are copied in;
 * these tests fail the moment a copy drifts, and say how to bring it back.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { V1ClusterRole, V1CustomResourceDefinition, V1Role } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { CHART_DIR, REPO_ROOT, find, render } from './chart.js';

const manifests = (dir: string) =>
  readdirSync(dir)
    .filter((file) => file.endsWith('.yaml'))
    .sort();

describe('the chart against the repository', () => {
  it('ships crds/ unchanged, every CRD and nothing else', async () => {
    const files = manifests(`${REPO_ROOT}crds/`);
    expect(manifests(`${CHART_DIR}crds/`), "the chart's CRDs are those of crds/: cp crds/*.yaml helm/crds/").toEqual(files);
    for (const file of files) {
      const chartCopy = readFileSync(`${CHART_DIR}crds/${file}`, 'utf8');
      expect(
        chartCopy === readFileSync(`${REPO_ROOT}crds/${file}`, 'utf8'),
        `helm/crds/${file} differs from crds/${file}: cp crds/${file} helm/crds/`,
      ).toBe(true);
    }

    const rendered = (await render({ includeCrds: true })).filter((object) => object.kind === 'CustomResourceDefinition');
    const repository = files.map((file) => parse(readFileSync(`${REPO_ROOT}crds/${file}`, 'utf8')) as V1CustomResourceDefinition);
    expect(rendered).toEqual(repository);
    expect(rendered.map((crd) => crd.metadata.name).sort()).toEqual([
      'agentpools.troupe.dev',
      'modelproviders.troupe.dev',
      'projects.troupe.dev',
      'workflows.troupe.dev',
    ]);
  });

  it('grants the operator exactly the rules of operator/rbac/', async () => {
    for (const file of ['clusterrole.yaml', 'leader-election-role.yaml']) {
      const chartCopy = readFileSync(`${CHART_DIR}files/rbac/${file}`, 'utf8');
      const source = readFileSync(`${REPO_ROOT}operator/rbac/${file}`, 'utf8');
      expect(
        chartCopy === source,
        `helm/files/rbac/${file} differs from operator/rbac/${file}: cp operator/rbac/${file} helm/files/rbac/`,
      ).toBe(true);
    }
    const objects = await render();
    const clusterRole = find<V1ClusterRole>(objects, 'ClusterRole', 'troupe-operator');
    const leaderRole = find<V1Role>(objects, 'Role', 'troupe-operator-leader-election');
    expect(clusterRole.rules).toEqual((parse(readFileSync(`${REPO_ROOT}operator/rbac/clusterrole.yaml`, 'utf8')) as V1ClusterRole).rules);
    expect(leaderRole.rules).toEqual((parse(readFileSync(`${REPO_ROOT}operator/rbac/leader-election-role.yaml`, 'utf8')) as V1Role).rules);
    expect(leaderRole.metadata?.namespace).toBe('troupe-system');
  });
});
