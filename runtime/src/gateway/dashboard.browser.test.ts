/**
 * The dashboard in real Chromium against the real embedded runtime behind the gateway: a client
 * watches a project progress live and approves its gate, an SRE scales a pool, and a client's
 * token shows nothing of another tenant. Screenshots go to test-results/.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { infra } from '@troupe/harness';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboardBuild } from './testing/dashboard-build.js';
import { startLiveCompany, submitCommand, type LiveCompany } from './testing/live-company.js';

const RESULTS = fileURLToPath(new URL('../../../test-results/', import.meta.url));

describe('the dashboard, in Chromium, on the live company', () => {
  let company: LiveCompany;
  let browser: Browser;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    mkdirSync(RESULTS, { recursive: true });
    // Slow enough LLM calls that a person (and the test) can watch the project move.
    company = await startLiveCompany({ latencyMs: 250, gateway: { staticDir: dashboardBuild() } });
    browser = await chromium.connectOverCDP(infra().chromium.cdpUrl);
  });

  afterAll(async () => {
    for (const context of contexts) await context.close();
    await browser?.close();
    await company?.stop();
  });

  /** A fresh browser session signed in with `token` through the login page. */
  async function signedIn(token: string, path = '/', device: 'desktop' | 'phone' = 'desktop'): Promise<Page> {
    const context = await browser.newContext(
      device === 'desktop'
        ? { viewport: { width: 1360, height: 900 }, colorScheme: 'light' }
        : { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, colorScheme: 'light' },
    );
    contexts.push(context);
    const page = await context.newPage();
    await page.goto(`${company.gateway.url}${path}`);
    await page.waitForURL(/\/login/);
    if (device === 'phone') await shoot(page, 'login-phone');
    await page.getByLabel('Access token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL((url) => !url.pathname.startsWith('/login'));
    await expect.poll(() => page.locator('[data-connection]').getAttribute('data-connection')).toBe('open');
    return page;
  }

  async function shoot(page: Page, name: string): Promise<void> {
    await page.screenshot({ path: join(RESULTS, `dashboard-${name}.png`), fullPage: true });
  }

  it('shows a project progressing live, and approving its gate lets it deliver', async () => {
    const page = await signedIn(company.token({ sub: 'cto@acme', tenant: 'acme' }));
    // Survives only if the page is never reloaded: what follows must arrive by push.
    await page.evaluate(() => Object.assign(globalThis, { stayedOnPage: true }));
    await company.api.submitProject('submit-storefront', submitCommand('acme', 'storefront', { approvals: ['architecture'] }));

    const card = page.locator('[data-project="acme/storefront"]');
    await expect.poll(() => card.count(), { timeout: 15_000 }).toBe(1);
    await expect.poll(() => card.locator('[data-phase]').getAttribute('data-phase'), { timeout: 30_000 }).toBe('AwaitingApproval');
    await expect.poll(() => card.getByText('Waiting for approval of').count()).toBe(1);
    await shoot(page, 'overview-awaiting-approval');

    await card.getByRole('link', { name: 'storefront' }).click();
    await page.waitForURL(/\/projects\/acme\/storefront$/);
    await expect.poll(() => page.locator('.timeline [data-state="awaiting"]').getAttribute('data-phase')).toBe('architecture');
    const approve = page.getByRole('button', { name: 'Approve architecture' });
    await expect.poll(() => approve.isEnabled()).toBe(true);
    await shoot(page, 'project-awaiting-approval');

    const percents = new Set<string>();
    await approve.click();
    await expect
      .poll(
        async () => {
          percents.add((await page.getByTestId('percent').textContent()) ?? '');
          return page.locator('h1 + p [data-phase]').getAttribute('data-phase');
        },
        { timeout: 45_000, interval: 100 },
      )
      .toBe('Delivered');
    expect(await page.getByTestId('percent').textContent()).toBe('100%');
    // It moved through several values on the way, without anyone reloading.
    expect(percents.size).toBeGreaterThanOrEqual(3);
    expect(await page.evaluate(() => (globalThis as { stayedOnPage?: boolean }).stayedOnPage)).toBe(true);

    expect(await page.locator('.timeline [data-state="done"]').count()).toBeGreaterThanOrEqual(4);
    expect(await page.locator('[data-column="Done"] .task').count()).toBeGreaterThanOrEqual(5);
    const artifacts = page.getByRole('list', { name: 'Artefacts' }).getByRole('button');
    expect(await artifacts.count()).toBeGreaterThan(0);
    await artifacts.first().click();
    await expect.poll(async () => ((await page.locator('pre').textContent()) ?? '').length, { timeout: 10_000 }).toBeGreaterThan(20);
    await shoot(page, 'project-delivered');
    await page.emulateMedia({ colorScheme: 'dark' });
    await shoot(page, 'project-delivered-dark');

    const phone = await signedIn(company.token({ sub: 'cto@acme', tenant: 'acme' }), '/', 'phone');
    await expect.poll(() => phone.locator('[data-project="acme/storefront"] [data-phase]').getAttribute('data-phase')).toBe('Delivered');
    // Nothing wider than the phone: no sideways scrolling.
    expect(await phone.evaluate('document.documentElement.scrollWidth <= document.documentElement.clientWidth')).toBe(true);
    await shoot(phone, 'overview-phone');
  });

  it('lets an SRE scale a pool, live, and offers a client no scale control', async () => {
    const page = await signedIn(company.token({ sub: 'oncall@platform', role: 'sre' }), '/pools');
    const row = page.locator('[data-pool="acme/developers"]');
    await expect.poll(() => row.getByTestId('replicas').textContent()).toBe('1/1');
    await row.getByLabel('Replicas for developers').fill('4');
    await row.getByRole('button', { name: 'Scale' }).click();
    await expect.poll(() => row.getByTestId('replicas').textContent(), { timeout: 10_000 }).toBe('4/4');
    const pools = await company.api.listPools('acme');
    expect(pools.find((entry) => entry.status?.pool === 'developers')?.status?.replicas).toBe(4);
    // The SRE sees every tenant's pools.
    expect(await page.locator('[data-pool^="globex/"]').count()).toBeGreaterThan(0);
    await shoot(page, 'pools-scaled');

    const client = await signedIn(company.token({ sub: 'cto@acme', tenant: 'acme' }), '/pools');
    await expect.poll(() => client.locator('[data-pool="acme/developers"]').count()).toBe(1);
    expect(await client.getByRole('button', { name: 'Scale' }).count()).toBe(0);
  });

  it("keeps a client's token to its own tenant", async () => {
    await company.api.submitProject('submit-globex', submitCommand('globex', 'ledger'));
    const page = await signedIn(company.token({ sub: 'cfo@globex', tenant: 'globex' }));
    await expect.poll(() => page.locator('[data-project="globex/ledger"]').count(), { timeout: 15_000 }).toBe(1);
    expect(await page.locator('[data-project^="acme/"]').count()).toBe(0);
    await page.goto(`${company.gateway.url}/costs`);
    await expect.poll(() => page.getByRole('heading', { name: 'By project' }).count()).toBe(1);
    await expect.poll(() => page.getByRole('row', { name: /globex\/ledger/ }).count()).toBe(1);
    expect(await page.getByRole('row', { name: /acme\// }).count()).toBe(0);
    await shoot(page, 'costs-globex');

    await page.goto(`${company.gateway.url}/projects/acme/storefront`);
    await expect.poll(() => page.getByRole('heading', { name: 'Not yours to see' }).count()).toBe(1);
    const denied = await page.evaluate(async () => {
      // Runs in the page; the test's own types know no DOM.
      const token = (globalThis as unknown as { sessionStorage: { getItem(key: string): string | null } }).sessionStorage.getItem(
        'troupe.token',
      );
      const response = await fetch('/api/projects/acme/storefront', { headers: { authorization: `Bearer ${token}` } });
      return { status: response.status, body: await response.json() };
    });
    expect(denied).toEqual({
      status: 403,
      body: { error: { code: 'PERMISSION_DENIED', message: 'a token of tenant globex may not read namespace acme' } },
    });
    await shoot(page, 'other-tenant-denied');
  });
});
