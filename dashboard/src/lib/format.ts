/** How numbers, money, times and phases read on the dashboard. */
import type { ProjectPhaseName } from '$protocol';

const compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });
const whole = new Intl.NumberFormat('en-US');
const clock = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit', second: '2-digit' });

/** Dollars: cents for amounts over a dollar, four significant digits below (LLM calls are cheap). */
export function usd(value: number): string {
  if (value === 0) return '$0.00';
  if (Math.abs(value) >= 1) return `$${value.toFixed(2)}`;
  return `$${value.toPrecision(3)}`;
}

export function count(value: number): string {
  return value >= 10_000 ? compact.format(value) : whole.format(value);
}

export function time(ms: number): string {
  return clock.format(ms);
}

/** A duration like `4m 05s` (or `2.4s`). */
export function duration(ms: number): string {
  // Tenths under ten seconds: simulated and cached work is that quick, and "0s" says nothing.
  if (ms < 9_950) return `${(Math.max(0, ms) / 1000).toFixed(1)}s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, '0')}m`;
}

export function bytes(value: number): string {
  if (value < 1024) return `${value} B`;
  if (value < 1024 * 1024) return `${(value / 1024).toFixed(1)} KiB`;
  return `${(value / 1024 / 1024).toFixed(1)} MiB`;
}

const PHASE_LABELS: Record<ProjectPhaseName, string> = {
  Pending: 'Pending',
  Planning: 'Planning',
  Running: 'Running',
  AwaitingApproval: 'Awaiting approval',
  Paused: 'Paused',
  Delivered: 'Delivered',
  Failed: 'Failed',
  Unknown: 'Unknown',
};

export function phaseLabel(phase: ProjectPhaseName): string {
  return PHASE_LABELS[phase];
}

/** Capitalised workflow phase or role name: `implementation` → `Implementation`. */
export function title(name: string): string {
  return name === '' ? '—' : name[0]!.toUpperCase() + name.slice(1);
}

const ROLE_LABELS: Record<string, string> = { pm: 'PM', qa: 'QA', devops: 'DevOps' };

/** A role as people write it: `pm` → `PM`, `developer` → `Developer`. */
export function roleLabel(role: string): string {
  return ROLE_LABELS[role] ?? title(role);
}
