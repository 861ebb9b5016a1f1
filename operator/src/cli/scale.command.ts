/** `troupe scale pool NAME --replicas N`: writes the pool's scale subresource, as `kubectl scale` does. */
import type { CliContext } from './context.js';
import { ExitCode, usage } from './exit-codes.js';
import { objectName } from './kinds.js';

export async function scale(
  context: CliContext,
  options: { kind: string; name: string; replicas: number; json: boolean },
): Promise<ExitCode> {
  const kind = context.catalog.named(options.kind);
  if (kind.info?.subresources.scale === undefined) throw usage(`${kind.type.plural} cannot be scaled; scale takes pool`);
  const scaled = await context.client.patch(
    kind.type,
    context.namespace,
    options.name,
    { spec: { replicas: options.replicas } },
    { strategy: 'merge', subresource: 'scale' },
  );
  if (options.json) context.out.write(`${JSON.stringify(scaled, null, 2)}\n`);
  else context.out.write(`${objectName(kind, options.name)} scaled to ${options.replicas} replicas\n`);
  return ExitCode.Ok;
}
