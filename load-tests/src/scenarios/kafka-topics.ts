/** Clean-up shared by the scenarios that make topics on the harness's broker. */
import { Kafka, logLevel } from 'kafkajs';

/** Deletes the topics a run made, so that runs do not pile them up on the broker. */
export async function deleteTopics(brokers: string[], topics: string[]): Promise<void> {
  const admin = new Kafka({ clientId: 'bench-cleanup', brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.deleteTopics({ topics });
  } finally {
    await admin.disconnect();
  }
}
