#!/usr/bin/env node
// Renders Adaptive Cards to PNG with the official renderer (adaptivecards 3.0.6, the browser
// build) in headless Chromium (playwright-core, Debian's /usr/bin/chromium or CHROMIUM_PATH),
// styled by the Microsoft Teams light host config from adaptivecards-designer.
//
// Usage: node tools/render_cards.js <output dir>   (stdin: a JSON list of {"name", "card"})
// Writes <output dir>/<name>.png for each card and prints {name: {"file", "width", "height",
// "events"}} as JSON, where events are the renderer's parse/validation events (expected: none).
//
// Markdown: Teams renders TextBlock markdown. The cards escape all text (cards/common.py
// `plain`), so the page's markdown hook only removes CommonMark backslash escapes (what a
// markdown renderer shows for them) and HTML-escapes the rest; no markdown library is needed.
'use strict';

const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

// The launch flags verified in shared/platform/stack-check.md (sections 4 and 5).
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const CARD_WIDTH = 460; // about the width Teams gives a card in a chat
const PAGES = 4;
const HOST_CONFIG = path.join(
  path.dirname(require.resolve('adaptivecards-designer/package.json')),
  'lib',
  'hostConfigs',
  'microsoft-teams-light.json',
);

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><style>
  html, body { margin: 0; background: #f5f5f5; }
  body { font-family: "Segoe UI", system-ui, -apple-system, "Helvetica Neue", Arial, sans-serif; padding: 16px; }
  .slot { width: ${CARD_WIDTH}px; background: #ffffff; border-radius: 6px; margin-bottom: 16px;
          box-shadow: 0 1px 2px rgba(0,0,0,.14), 0 0 2px rgba(0,0,0,.12); overflow: hidden; }
  .ac-pushButton { cursor: pointer; min-height: 32px; border-radius: 4px; font-weight: 600;
                   border: 1px solid #d1d1d1; background: #fff; padding: 4px 12px; }
  .ac-pushButton.style-positive { background: #6264a7; color: #fff; border-color: #6264a7; }
  .ac-pushButton.style-destructive { color: #c4314b; }
  input, textarea, select { font: inherit; font-size: 14px; border: 1px solid #d1d1d1; border-radius: 4px; padding: 4px 6px;
                            box-sizing: border-box; background: #fff; }
</style></head><body></body></html>`;

async function renderLane(browser, items, lane, hostConfig, outDir, report) {
  const page = await browser.newPage({ deviceScaleFactor: 2 });
  // Offline: nothing but the page itself (fonts from Microsoft's CDN would fail anyway).
  await page.route(/^https?:/, (route) => route.abort());
  await page.setContent(PAGE);
  await page.addScriptTag({ path: require.resolve('adaptivecards/dist/adaptivecards.min.js') });
  for (const [position, { name, card }] of items.entries()) {
    const index = `${lane}-${position}`;
    if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`card name must be a file name: ${name}`);
    const events = await page.evaluate(
      ({ card, hostConfig, slotId }) => {
        const AC = window.AdaptiveCards;
        AC.AdaptiveCard.onProcessMarkdown = (text, result) => {
          const shown = text.replace(/\\([!-/:-@[-`{-~])/g, '$1');
          const div = document.createElement('div');
          div.textContent = shown;
          result.outputHtml = div.innerHTML.replace(/\n/g, '<br>');
          result.didProcess = true;
        };
        const adaptiveCard = new AC.AdaptiveCard();
        adaptiveCard.hostConfig = new AC.HostConfig(hostConfig);
        const context = new AC.SerializationContext();
        adaptiveCard.parse(card, context);
        const found = [];
        for (let i = 0; i < context.eventCount; i++) found.push(context.getEventAt(i).message);
        for (const e of adaptiveCard.validateProperties().validationEvents) found.push(e.message);
        const slot = document.createElement('div');
        slot.className = 'slot';
        slot.id = slotId;
        slot.appendChild(adaptiveCard.render());
        document.body.appendChild(slot);
        return found;
      },
      { card, hostConfig, slotId: `card-${index}` },
    );
    const file = path.join(outDir, `${name}.png`);
    const slot = page.locator(`#card-${index}`);
    await slot.screenshot({ path: file, animations: 'disabled', caret: 'hide' });
    const box = await slot.boundingBox();
    report[name] = { file, width: Math.round(box.width), height: Math.round(box.height), events };
    // One card on the page at a time: a page that grows with every card gets slow to shoot.
    await slot.evaluate((element) => element.remove());
  }
}

async function main(outDir) {
  if (!outDir) throw new Error('usage: node tools/render_cards.js <output dir> < cards.json');
  const items = JSON.parse(fs.readFileSync(0, 'utf8'));
  fs.mkdirSync(outDir, { recursive: true });
  const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
  const browser = await chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS });
  const report = {};
  try {
    const hostConfig = JSON.parse(fs.readFileSync(HOST_CONFIG, 'utf8'));
    // A few pages side by side: most of a card's time is spent waiting for the screenshot.
    const pages = Math.max(1, Math.min(PAGES, items.length));
    await Promise.all(
      Array.from({ length: pages }, (_, lane) =>
        renderLane(browser, items.filter((_, index) => index % pages === lane), lane, hostConfig, outDir, report),
      ),
    );
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(report));
}

main(process.argv[2]).then(
  () => {},
  (error) => {
    console.error(String(error && error.stack ? error.stack : error));
    process.exitCode = 2;
  },
);
