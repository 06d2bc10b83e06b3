#!/usr/bin/env node
// Parses and validates Adaptive Cards with the official renderer library (npm adaptivecards
// 3.0.6, loaded as `adaptivecards/dist/adaptivecards.js`, the UMD build that runs in plain Node),
// with the Microsoft Teams host config from adaptivecards-designer, as Teams would.
//
// stdin: a JSON list of {"name": "...", "card": {...}}.
// stdout: a JSON object {name: [event, ...]} with every parse event (SerializationContext) and
// every validation event (card.validateProperties()) of each card, as
// {"phase": "Parse"|"Validation", "event": "<ValidationEvent name>", "message": "..."}.
// Exit code 0 when no card has an event, 1 when one has, 2 when the tool can't run.
'use strict';

const fs = require('fs');
const path = require('path');

const AC = require('adaptivecards/dist/adaptivecards.js');

const TEAMS_HOST_CONFIG = path.join(
  path.dirname(require.resolve('adaptivecards-designer/package.json')),
  'lib',
  'hostConfigs',
  'microsoft-teams-light.json',
);

function check(card, hostConfig) {
  const events = [];
  const adaptiveCard = new AC.AdaptiveCard();
  adaptiveCard.hostConfig = hostConfig;
  const context = new AC.SerializationContext();
  adaptiveCard.parse(card, context);
  for (let i = 0; i < context.eventCount; i++) {
    const e = context.getEventAt(i);
    events.push({ phase: AC.ValidationPhase[e.phase], event: AC.ValidationEvent[e.event], message: e.message });
  }
  for (const e of adaptiveCard.validateProperties().validationEvents) {
    events.push({ phase: AC.ValidationPhase[e.phase], event: AC.ValidationEvent[e.event], message: e.message });
  }
  return events;
}

function main() {
  const items = JSON.parse(fs.readFileSync(0, 'utf8'));
  const hostConfig = new AC.HostConfig(JSON.parse(fs.readFileSync(TEAMS_HOST_CONFIG, 'utf8')));
  const report = {};
  let failed = false;
  for (const { name, card } of items) {
    if (Object.prototype.hasOwnProperty.call(report, name)) throw new Error(`duplicate card name ${name}`);
    report[name] = check(card, hostConfig);
    if (report[name].length > 0) failed = true;
  }
  process.stdout.write(JSON.stringify(report));
  return failed ? 1 : 0;
}

try {
  process.exitCode = main();
} catch (error) {
  console.error(String(error && error.stack ? error.stack : error));
  process.exitCode = 2;
}
