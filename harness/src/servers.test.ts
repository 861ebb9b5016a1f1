import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ApiextensionsV1Api, CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import cassandra from 'cassandra-driver';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { chromium } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { infra } from './index.js';
import { REPO_ROOT, defaultCacheDir } from './paths.js';
import { startKube } from './servers/kube.js';

const exec = promisify(execFile);

describe('the real servers of a test run', () => {
  it('Kafka takes a message from a producer and hands it to a consumer group', async () => {
    const kafka = new Kafka({ clientId: 'smoke', brokers: infra().kafka.brokers, logLevel: logLevel.NOTHING });
    const topic = `smoke-${Date.now()}`;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
    await admin.disconnect();

    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages: [{ key: 'a', value: 'hello from troupe' }] });
    await producer.disconnect();

    const consumer = kafka.consumer({ groupId: `${topic}-group` });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const received = await new Promise<string>((resolve) => {
      void consumer.run({ eachMessage: async ({ message }) => resolve(message.value?.toString() ?? '') });
    });
    await consumer.disconnect();
    expect(received).toBe('hello from troupe');
  });

  it('Cassandra creates a keyspace and round-trips a row', async () => {
    const client = new cassandra.Client(infra().cassandra);
    await client.connect();
    try {
      const keyspace = `smoke_${Date.now()}`;
      await client.execute(`CREATE KEYSPACE ${keyspace} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`);
      await client.execute(`CREATE TABLE ${keyspace}.notes (id text PRIMARY KEY, body text)`);
      await client.execute(`INSERT INTO ${keyspace}.notes (id, body) VALUES (?, ?)`, ['n1', 'journaled'], { prepare: true });
      const result = await client.execute(`SELECT body FROM ${keyspace}.notes WHERE id = ?`, ['n1'], { prepare: true });
      expect(result.first()?.get('body')).toBe('journaled');
      const version = await client.execute('SELECT release_version FROM system.local');
      expect(String(version.first()?.get('release_version'))).toMatch(/^5\.0\./);
      await client.execute(`DROP KEYSPACE ${keyspace}`);
    } finally {
      await client.shutdown();
    }
  });

  it('Redis stores a value and runs a Lua script atomically', async () => {
    const redis = new Redis(infra().redis.url);
    try {
      await redis.set('smoke:greeting', 'hi');
      expect(await redis.get('smoke:greeting')).toBe('hi');
      const incrementBy = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
      await redis.del('smoke:counter');
      expect(await redis.eval(incrementBy, 1, 'smoke:counter', 5)).toBe(5);
      expect(await redis.eval(incrementBy, 1, 'smoke:counter', 2)).toBe(7);
      expect((await redis.info('server')).includes('redis_version:')).toBe(true);
    } finally {
      redis.disconnect();
    }
  });

  it('the API server serves every Troupe kind, and kubectl reads them back', async () => {
    const { kube } = infra();
    const config = new KubeConfig();
    config.loadFromFile(kube.kubeconfig);
    const namespace = `smoke-${Date.now()}`;
    await config.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });

    const crds = await config.makeApiClient(ApiextensionsV1Api).listCustomResourceDefinition();
    const kinds = crds.items.filter((crd) => crd.spec.group === 'troupe.dev').map((crd) => crd.spec.names.kind);
    expect(kinds.sort()).toEqual(['AgentPool', 'ModelProvider', 'Project', 'Workflow']);

    const objects = config.makeApiClient(CustomObjectsApi);
    const create = (plural: string, body: object) =>
      objects.createNamespacedCustomObject({ group: 'troupe.dev', version: 'v1alpha1', namespace, plural, body });
    const meta = (kind: string, name: string) => ({ apiVersion: 'troupe.dev/v1alpha1', kind, metadata: { name, namespace } });
    await create('modelproviders', { ...meta('ModelProvider', 'sim'), spec: { type: 'simulated' } });
    await create('agentpools', {
      ...meta('AgentPool', 'developers'),
      spec: { role: 'developer', replicas: 2, concurrency: 8, model: { provider: 'sim', name: 'sim-large' } },
    });
    await create('workflows', { ...meta('Workflow', 'tiny'), spec: { phases: [{ name: 'build', role: 'developer' }] } });
    await create('projects', {
      ...meta('Project', 'shop'),
      spec: { client: 'acme', brief: 'A small web shop.', budget: { maxCostUSD: 5 } },
    });

    const kubectl = (...args: string[]) => exec(kube.kubectl, ['--kubeconfig', kube.kubeconfig, '-n', namespace, ...args]);
    const { stdout } = await kubectl('get', 'projects,agentpools,modelproviders,workflows', '-o', 'name');
    expect(stdout.trim().split('\n').sort()).toEqual([
      'agentpool.troupe.dev/developers',
      'modelprovider.troupe.dev/sim',
      'project.troupe.dev/shop',
      'workflow.troupe.dev/tiny',
    ]);
  });

  it('helm scaffolds a chart and lints it clean', async () => {
    const { helm } = infra();
    const dir = mkdtempSync(join(tmpdir(), 'troupe-helm-'));
    await exec(helm.binary, ['create', join(dir, 'smoke')]);
    const { stdout } = await exec(helm.binary, ['lint', join(dir, 'smoke')]);
    expect(stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    const { stdout: version } = await exec(helm.binary, ['version', '--short']);
    expect(version).toMatch(/^v3\.\d+\.\d+/);
  });

  it('Chromium renders a page and saves a screenshot', async () => {
    const browser = await chromium.connectOverCDP(infra().chromium.cdpUrl);
    try {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.setContent('<main><h1 id="title">Troupe</h1><button onclick="this.textContent=\'clicked\'">go</button></main>');
      await page.click('button');
      expect(await page.textContent('button')).toBe('clicked');
      expect(await page.evaluate('navigator.userAgent')).toContain('Chrome/');
      const file = join('test-results', 'smoke-chromium.png');
      await page.screenshot({ path: join(import.meta.dirname, '..', '..', file) });
      expect(statSync(join(import.meta.dirname, '..', '..', file)).size).toBeGreaterThan(1000);
      await context.close();
    } finally {
      await browser.close();
    }
  });
});

describe('a server that fails to start', () => {
  it('leaves no process behind when the API server fails after etcd and it started', async () => {
    const root = mkdtempSync(join(REPO_ROOT, '.troupe', 'infra', 'failing-kube-'));
    mkdirSync(join(root, 'crds'));
    // The API server refuses it, so the start fails with both processes up.
    writeFileSync(
      join(root, 'crds', 'nameless.yaml'),
      'apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec: {}\n',
    );
    const context = { cacheDir: defaultCacheDir(process.env), runDir: join(root, 'run'), repoRoot: root };
    try {
      await expect(startKube(context)).rejects.toThrow(/kubectl .*apply/);
      expect(processesMentioning(root)).toEqual([]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

/** Live processes whose command line names `text`. */
function processesMentioning(text: string): string[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .flatMap((pid) => {
      try {
        const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
        return command.includes(text) ? [`${pid}: ${command}`] : [];
      } catch {
        return [];
      }
    });
}
