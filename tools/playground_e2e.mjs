#!/usr/bin/env node
// The freelancer loop clicked through the Microsoft 365 Agents Playground's web UI.
//
// Two Playgrounds run against the same dev-mode bot, because a Playground is one signed-in
// person and has no user switcher: one as Alex Wilber (the requester), one as Megan Bowen (his
// manager, the approver). This script opens both in headless Chromium (playwright-core) and:
//
//   1. Megan opens her personal chat (the bot can only message people who opened the app);
//   2. Alex opens the team's General channel (that installs the bot in the team);
//   3. Alex types /request in his personal chat and gets the intake card;
//   4. Alex fills the card's inputs (title, description, justification, freelancer, e-mail,
//      dates, team, channel name) and 5. clicks "Submit request": the card turns into the
//      preview "Check your request"; he clicks "Confirm and send" and it turns into
//      "Request FC-n submitted";
//   6. Megan sees the approval card and 7. clicks Approve;
//   8. Alex's chat gets "FC-n is ready";
//   9. the welcome card shows in the new private channel (Alex's Playground). This needs the
//      channel listed in the Playground's config with the id the bot created it under (the
//      Playground only knows the channels in its config); --skip-welcome leaves it out.
//
// A screenshot after every step goes to --out. The last line on stdout is a JSON result:
// {"ok": true|false, "ref": "FC-1", "steps": [{"name", "screenshot", "ms"}], "error"?}.
//
//   node tools/playground_e2e.mjs --alex=http://127.0.0.1:56150 --megan=http://127.0.0.1:56151 \
//       [--out=test-artifacts/playground] [--chromium=/usr/bin/chromium] [--timeout-ms=20000] \
//       [--title=...] [--justification=...] [--freelancer=...] [--email=...] \
//       [--start=YYYY-MM-DD] [--end=YYYY-MM-DD] \
//       [--team="Contoso Marketing"] [--channel=...] [--skip-welcome]
//
// With the committed .m365agentsplayground.yml, start the bot (scripts/dev) and
// `scripts/playground` plus `scripts/playground megan`, and pass --skip-welcome.
// tests/playground/test_playground_e2e.py runs it with the welcome.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const { chromium } = await import(path.join(here, '..', 'node_modules', 'playwright-core', 'index.mjs'));

function parseArgs(argv) {
  const args = {};
  for (const arg of argv) {
    const match = /^--([^=]+)(?:=(.*))?$/s.exec(arg);
    if (!match) throw new Error(`unexpected argument ${arg}`);
    args[match[1]] = match[2] ?? true;
  }
  return args;
}

function isoDate(date) {
  return date.toISOString().slice(0, 10);
}

function addDays(iso, days) {
  const date = new Date(`${iso}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() + days);
  return isoDate(date);
}

// The Playground's date picker (Fluent UI) shows and parses dates like "December 1, 2026".
function pickerText(iso) {
  const date = new Date(`${iso}T00:00:00Z`);
  return date.toLocaleDateString('en-US', {
    timeZone: 'UTC', year: 'numeric', month: 'long', day: 'numeric',
  });
}

const args = parseArgs(process.argv.slice(2));
const start = args.start || addDays(isoDate(new Date()), 7);
const options = {
  alex: args.alex || process.env.PLAYGROUND_ALEX_URL || 'http://127.0.0.1:56150',
  megan: args.megan || process.env.PLAYGROUND_MEGAN_URL || 'http://127.0.0.1:56151',
  out: path.resolve(args.out || process.env.PLAYGROUND_E2E_OUT || 'test-artifacts/playground'),
  chromium: args.chromium || process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  timeoutMs: Number(args['timeout-ms'] || 20000),
  title: args.title || 'Spring campaign',
  description: args.description || 'Landing page copy and three banner variants.',
  justification: args.justification || 'No copywriter in the team; the campaign starts soon.',
  freelancer: args.freelancer || 'Jordan Rivers',
  email: args.email || 'jordan@fabrikam.com',
  start,
  end: args.end || addDays(start, 60),
  team: args.team || 'Contoso Marketing',
  channel: args.channel || args.title || 'Spring campaign',
  requester: args.requester || 'Alex Wilber',
  approver: args.approver || 'Megan Bowen',
  skipWelcome: Boolean(args['skip-welcome']),
};

fs.mkdirSync(options.out, { recursive: true });

// Flags from docs/stack-check: headless Chromium that never reaches out on its own.
const browser = await chromium.launch({
  executablePath: options.chromium,
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});

const result = { ok: false, ref: null, steps: [], out: options.out };
const pages = {};

async function openPlayground(who, url) {
  const context = await browser.newContext({
    viewport: { width: 1400, height: 1100 },
    locale: 'en-US',
    timezoneId: 'UTC',
  });
  context.setDefaultTimeout(options.timeoutMs);
  const page = await context.newPage();
  pages[who] = page;
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  await page.getByRole('treeitem', { name: 'Personal Chat' }).waitFor();
  return page;
}

let stepNumber = 0;
let currentStep = null;
async function step(name, page, action) {
  const started = Date.now();
  stepNumber += 1;
  currentStep = name;
  await action();
  const file = path.join(options.out, `${String(stepNumber).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file });
  result.steps.push({ name, screenshot: file, ms: Date.now() - started });
  console.error(`step ${stepNumber} ${name}: ${Date.now() - started} ms`);
}

// Bot messages are Adaptive Cards. Looking for them inside rendered cards keeps the chat list's
// previews (which repeat a message's text) out of the match.
function card(page, text) {
  return page.locator('.ac-adaptiveCard', { hasText: text });
}

// Opens a chat or channel and waits until the message pane shows it: a channel has the
// "Start a new post" box, a chat does not. Otherwise a card still shown from the previous pane
// could pass for one in the new pane.
async function openChat(page, name, { channel = false } = {}) {
  await page.getByRole('treeitem', { name }).click();
  const newPost = page.getByText('Start a new post');
  await (channel ? newPost.first().waitFor() : newPost.first().waitFor({ state: 'hidden' }));
}

async function send(page, text) {
  const box = page.locator('[contenteditable=true][role=textbox]');
  await box.click();
  await box.pressSequentially(text);
  await box.press('Enter');
}

async function pickDate(form, label, iso) {
  const input = form.getByRole('combobox', { name: label, exact: true });
  await input.fill(pickerText(iso));
  // The calendar pops up while typing and would cover the inputs below it.
  await input.press('Escape');
  const shown = await input.inputValue();
  if (shown !== pickerText(iso)) throw new Error(`${label} shows "${shown}", not ${pickerText(iso)}`);
}

try {
  const [alex, megan] = await Promise.all([
    openPlayground('alex', options.alex),
    openPlayground('megan', options.megan),
  ]);

  await step('megan-opens-personal-chat', megan, async () => {
    await openChat(megan, 'Personal Chat');
    await card(megan, "Hi, I'm Freelance Connector").first().waitFor();
  });

  await step('alex-adds-bot-to-team', alex, async () => {
    await openChat(alex, `${options.team} - General`, { channel: true });
    await card(alex, "Hi, I'm Freelance Connector").first().waitFor();
  });

  let form;
  await step('alex-types-request', alex, async () => {
    await openChat(alex, 'Personal Chat');
    await card(alex, "Hi, I'm Freelance Connector").first().waitFor();
    await send(alex, '/request');
    form = card(alex, 'Request a freelancer').last();
    await form.getByLabel('Project title', { exact: true }).waitFor();
  });

  await step('alex-fills-intake-card', alex, async () => {
    await form.getByLabel('Project title', { exact: true }).fill(options.title);
    await form.getByLabel('What will the freelancer work on?').fill(options.description);
    await form.getByLabel('Business justification', { exact: true }).fill(options.justification);
    await form.getByLabel("Freelancer's full name").fill(options.freelancer);
    await form.getByLabel("Freelancer's e-mail").fill(options.email);
    await pickDate(form, 'Start date', options.start);
    await pickDate(form, 'End date', options.end);
    const team = form.getByRole('combobox', { name: 'Team', exact: true });
    await team.click();
    await alex.getByRole('option', { name: options.team }).click();
    const chosen = await team.inputValue();
    if (chosen !== options.team) throw new Error(`Team shows "${chosen}"`);
    await form.getByLabel('Private channel name').fill(options.channel);
    await form.getByRole('button', { name: 'Submit request' }).scrollIntoViewIfNeeded();
  });

  await step('alex-submits-request', alex, async () => {
    await form.getByRole('button', { name: 'Submit request' }).click();
    // The card in place becomes the preview: nothing is sent before Confirm.
    await card(alex, 'Check your request').last().getByText(options.channel).first().waitFor();
  });

  await step('alex-confirms-preview', alex, async () => {
    const preview = card(alex, 'Check your request').last();
    await preview.getByRole('button', { name: 'Confirm and send' }).click();
    // The confirmation is the requester's live status card: the bot updates it in place as
    // soon as the approver is named, so read the ref from whatever the cards show then rather
    // than from one element that may be re-rendered under the locator.
    await card(alex, /Request FC-\d+/).first().waitFor();
    const shown = await alex.locator('.ac-adaptiveCard').allInnerTexts();
    result.ref = shown.map((text) => /Request (FC-\d+)/.exec(text)).find(Boolean)[1];
    await card(alex, `${result.ref} is with ${options.approver} for approval`).first().waitFor();
  });

  let approval;
  await step('megan-sees-approval-card', megan, async () => {
    approval = card(megan, `Approval needed: ${result.ref}`).last();
    await approval.waitFor();
    await approval.getByText(options.freelancer).first().waitFor();
  });

  await step('megan-approves', megan, async () => {
    await approval.getByRole('button', { name: 'Approve', exact: true }).click();
    await card(megan, `Approved by ${options.approver}`).first().waitFor();
  });

  await step('alex-notified-ready', alex, async () => {
    await card(alex, `${result.ref} was approved by ${options.approver}`).first().waitFor();
    // Provisioning runs in the bot's background worker; give it more time than a UI update.
    await card(alex, `${result.ref} is ready`).first().waitFor({ timeout: options.timeoutMs * 2 });
  });

  if (!options.skipWelcome) {
    await step('channel-welcome', alex, async () => {
      await openChat(alex, `${options.team} - ${options.channel}`, { channel: true });
      await card(alex, `Welcome, ${options.freelancer}`).first().waitFor();
    });
  }
  result.ok = true;
} catch (error) {
  result.error = String(error && error.message ? error.message : error).split('\n')[0];
  result.failedStep = stepNumber;
  result.failedStepName = currentStep;
  for (const [who, page] of Object.entries(pages)) {
    const file = path.join(options.out, `failure-${who}.png`);
    await page.screenshot({ path: file }).catch(() => {});
  }
} finally {
  await browser.close();
}

console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
