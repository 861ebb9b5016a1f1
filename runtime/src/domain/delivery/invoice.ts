/**
 * A client's invoice, from the durable cost ledger (the client's `cost-ledger` actor): one line
 * per project, role and model with the calls bought, the tokens in and out and their price, and
 * the total. Answers cached from the response cache were not bought and are not billed. Any node
 * makes the same invoice, before and after a restart.
 */
import type { Invoice, InvoiceLine } from '../../api/runtime-api.js';
import { RuntimeError, RuntimeErrorCode } from '../../errors.js';
import type { ClientLedgers } from '../../llm/ledger.actor.js';
import { toNanoUSD, toUSD } from '../../llm/pricing.js';

/** Clients and namespaces are DNS labels. */
const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * The invoice of `client`, over its projects in `namespace` (all namespaces when undefined).
 *
 * @example
 * (await invoiceOf(company.ledger, 'acme', 'acme', Date.now())).total.costUSD
 */
export async function invoiceOf(
  ledger: Pick<ClientLedgers, 'rows'>,
  client: string,
  namespace: string | undefined,
  now: number,
): Promise<Invoice> {
  if (!LABEL.test(client)) throw new RuntimeError(RuntimeErrorCode.InvalidArgument, `client "${client.slice(0, 80)}" is not a DNS label`);
  // The ledger keeps rows per phase as well; a line sums a role's phases on one model.
  const sums = new Map<string, InvoiceLine & { nanoUSD: number }>();
  for (const row of await ledger.rows({ client })) {
    if (namespace !== undefined && !row.project.startsWith(`${namespace}/`)) continue;
    const key = `${row.project}\u0000${row.role}\u0000${row.model}`;
    const line = sums.get(key) ?? {
      project: row.project,
      role: row.role,
      model: row.model,
      calls: 0,
      inputTokens: 0,
      outputTokens: 0,
      costUSD: 0,
      nanoUSD: 0,
    };
    line.calls += row.calls;
    line.inputTokens += row.inputTokens;
    line.outputTokens += row.outputTokens;
    // Summed in nano-dollars, as the ledger counts, so the sums are exact.
    line.nanoUSD += toNanoUSD(row.costUSD);
    sums.set(key, line);
  }
  const lines = [...sums.values()]
    .filter((line) => line.calls > 0)
    .sort((a, b) => a.project.localeCompare(b.project) || a.role.localeCompare(b.role) || a.model.localeCompare(b.model));
  const total = { calls: 0, inputTokens: 0, outputTokens: 0, nanoUSD: 0 };
  for (const line of lines) {
    total.calls += line.calls;
    total.inputTokens += line.inputTokens;
    total.outputTokens += line.outputTokens;
    total.nanoUSD += line.nanoUSD;
  }
  const { nanoUSD, ...counts } = total;
  return {
    client,
    ...(namespace === undefined ? {} : { namespace }),
    issuedAt: new Date(now).toISOString(),
    currency: 'USD',
    lines: lines.map(({ nanoUSD: lineNanoUSD, ...line }) => ({ ...line, costUSD: toUSD(lineNanoUSD) })),
    total: { ...counts, costUSD: toUSD(nanoUSD) },
  };
}
