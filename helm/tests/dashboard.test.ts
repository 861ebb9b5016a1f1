/**
 * The Grafana dashboard (dashboards/troupe.json) shows what the processes measure: every query
 * names only metric families the runtime and the operator define, and every family they define
 * has a panel. A renamed metric fails here instead of leaving an empty panel in production.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CHART_DIR, REPO_ROOT } from './chart.js';

interface Panel {
  type: string;
  title: string;
  datasource?: { uid: string };
  targets?: { expr: string }[];
}

const dashboard = JSON.parse(readFileSync(`${CHART_DIR}dashboards/troupe.json`, 'utf8')) as {
  uid: string;
  panels: Panel[];
  templating: { list: { name: string }[] };
};

/** The troupe_* families defined by the files that register them (prom-client `name:` options). */
function definedFamilies(): Set<string> {
  const files = [
    ...readdirSync(`${REPO_ROOT}runtime/src/metrics`).map((file) => `${REPO_ROOT}runtime/src/metrics/${file}`),
    `${REPO_ROOT}operator/src/kube/metrics.ts`,
  ].filter((file) => file.endsWith('.ts') && !file.endsWith('.test.ts'));
  return new Set(
    files.flatMap((file) => [...readFileSync(file, 'utf8').matchAll(/\bname: '(troupe_[a-z_]+)'/g)].map((match) => match[1] as string)),
  );
}

/** The families a query reads: a histogram's _bucket, _count and _sum series belong to its family. */
function queriedFamilies(expr: string): string[] {
  return (expr.match(/\btroupe_[a-z_]+/g) ?? []).map((series) => series.replace(/_(bucket|count|sum)$/, ''));
}

describe('the Grafana dashboard', () => {
  const panels = dashboard.panels.filter((panel) => panel.type !== 'row');
  const queried = new Set(panels.flatMap((panel) => (panel.targets ?? []).flatMap((target) => queriedFamilies(target.expr))));

  it('queries only metrics the processes serve, and shows every one of them', () => {
    const defined = definedFamilies();
    expect(defined.size).toBeGreaterThanOrEqual(10);
    expect([...queried].filter((family) => !defined.has(family)).sort()).toEqual([]);
    expect([...defined].filter((family) => !queried.has(family)).sort()).toEqual([]);
  });

  it('has a query in every panel, each against the chosen Prometheus data source', () => {
    expect(dashboard.templating.list.map((variable) => variable.name)).toContain('datasource');
    for (const panel of panels) {
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      expect(panel.datasource?.uid, panel.title).toBe('${datasource}');
    }
  });
});
