/**
 * A client's invoice, from the cost ledger: one line per project, role and model with the
 * calls bought, the tokens in and out and their price, and the total. Answers cached from the
 * response cache were not bought and are not billed.
 */
import type { Invoice, InvoiceLine } from '../../api/runtime-api.js';
import { RuntimeError, RuntimeErrorCode } from '../../errors.js';
import type { CostLedger } from '../../llm/ledger.js';
import { toNanoUSD, toUSD } from '../../llm/pricing.js';

/** Clients and namespaces are DNS labels. */
const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * The invoice of `client`, over its projects in `namespace` (all namespaces when undefined).
 *
 * @example
 * invoiceOf(ledger, 'acme', 'acme', Date.now()).total.costUSD
 */
export function invoiceOf(ledger: CostLedger, client: string, namespace: string | undefined, now: number): Invoice {
  if (!LABEL.test(client)) throw new RuntimeError(RuntimeErrorCode.InvalidArgument, `client "${client.slice(0, 80)}" is not a DNS label`);
  const keys = new Map<string, Pick<InvoiceLine, 'project' | 'role' | 'model'>>();
  for (const { project, role, model } of ledger.rows({ client })) {
    if (namespace === undefined || project.startsWith(`${namespace}/`))
      keys.set(`${project}\u0000${role}\u0000${model}`, { project, role, model });
  }
  // The ledger keeps rows per phase as well; a line sums a role's phases on one model.
  const lines = [...keys.values()]
    .map((key): InvoiceLine => {
      const totals = ledger.totals({ client, ...key });
      return { ...key, calls: totals.calls, inputTokens: totals.inputTokens, outputTokens: totals.outputTokens, costUSD: totals.costUSD };
    })
    .filter((line) => line.calls > 0)
    .sort((a, b) => a.project.localeCompare(b.project) || a.role.localeCompare(b.role) || a.model.localeCompare(b.model));
  const total = lines.reduce(
    (sum, line) => ({
      calls: sum.calls + line.calls,
      inputTokens: sum.inputTokens + line.inputTokens,
      outputTokens: sum.outputTokens + line.outputTokens,
      // Summed in nano-dollars, as the ledger counts, so the total is exact.
      nanoUSD: sum.nanoUSD + toNanoUSD(line.costUSD),
    }),
    { calls: 0, inputTokens: 0, outputTokens: 0, nanoUSD: 0 },
  );
  const { nanoUSD, ...counts } = total;
  return {
    client,
    ...(namespace === undefined ? {} : { namespace }),
    issuedAt: new Date(now).toISOString(),
    currency: 'USD',
    lines,
    total: { ...counts, costUSD: toUSD(nanoUSD) },
  };
}
