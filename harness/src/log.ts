/** Prints a long step's start and end, so a cold run that builds for minutes says what it is doing. */
export async function step<T>(label: string, run: () => Promise<T>): Promise<T> {
  const started = Date.now();
  console.log(`troupe-infra: ${label}…`);
  try {
    const result = await run();
    console.log(`troupe-infra: ${label}: done in ${seconds(Date.now() - started)}`);
    return result;
  } catch (error) {
    console.log(`troupe-infra: ${label}: failed after ${seconds(Date.now() - started)}`);
    throw error;
  }
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}
