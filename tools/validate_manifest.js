#!/usr/bin/env node
// Validates Teams app manifests against the official JSON schema shipped in the npm package
// @microsoft/app-manifest (1.1.2), offline: the schema is read from the package's bundled copy,
// never fetched.
//
// The check is the one AppManifestUtils.validateAgainstSchema does (ajv-draft-04 with allErrors,
// strictTypes off, ajv-formats uri/email/regex, the same \a \v clean-up of the schema text and the
// same error format), called directly: the package's entry point requires `fs-extra`, which
// @microsoft/app-manifest 1.1.2 does not declare as a dependency, so `npm ci` doesn't install it.
//
// Usage: node tools/validate_manifest.js manifest.json [more.json ...]
// Prints one JSON line per manifest: {"file", "schema", "errors": [...]}. Exit code 0 when every
// manifest is valid, 1 when one is not, 2 when the tool can't run (e.g. the schema is missing).
'use strict';

const fs = require('fs');
const path = require('path');

const PACKAGE_DIR = path.dirname(require.resolve('@microsoft/app-manifest/package.json'));
// ajv and its plugins as @microsoft/app-manifest itself resolves them.
const fromPackage = (name) => require(require.resolve(name, { paths: [PACKAGE_DIR] }));

function bundledSchemaPath(schemaUrl) {
  const match =
    /^https:\/\/developer\.microsoft\.com\/(?:en-us\/)?json-schemas\/teams\/(v[^/]+)\/MicrosoftTeams\.schema\.json$/.exec(
      schemaUrl || '',
    );
  if (!match) {
    throw new Error(`$schema is not a Teams manifest schema URL: ${JSON.stringify(schemaUrl)}`);
  }
  const file = path.join(PACKAGE_DIR, 'build', 'json-schemas', 'teams', match[1], 'MicrosoftTeams.schema.json');
  if (!fs.existsSync(file)) {
    throw new Error(`@microsoft/app-manifest does not bundle the ${match[1]} schema (${file})`);
  }
  return file;
}

const compiled = new Map();

function validator(schemaFile) {
  if (compiled.has(schemaFile)) return compiled.get(schemaFile);
  const Ajv = fromPackage('ajv-draft-04');
  const addFormats = fromPackage('ajv-formats');
  const raw = fs.readFileSync(schemaFile, 'utf8').replace(/\\a/g, '\\u0007').replace(/\\v/g, '\\u000b');
  const ajv = new (Ajv.default || Ajv)({ allErrors: true, strictTypes: false });
  (addFormats.default || addFormats)(ajv, ['uri', 'email', 'regex']);
  const validate = ajv.compile(JSON.parse(raw));
  compiled.set(schemaFile, validate);
  return validate;
}

function main(files) {
  if (files.length === 0) {
    console.error('usage: node tools/validate_manifest.js manifest.json [...]');
    return 2;
  }
  let failed = false;
  for (const file of files) {
    const manifest = JSON.parse(fs.readFileSync(file, 'utf8'));
    const schemaFile = bundledSchemaPath(manifest.$schema);
    const validate = validator(schemaFile);
    const errors = validate(manifest)
      ? []
      : validate.errors.map(
          (e) => `${e.instancePath} ${e.message || ''}. Details: ${e.params ? JSON.stringify(e.params) : ''}`,
        );
    if (errors.length > 0) failed = true;
    console.log(JSON.stringify({ file, schema: path.relative(process.cwd(), schemaFile), errors }));
  }
  return failed ? 1 : 0;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (error) {
  console.error(String(error && error.stack ? error.stack : error));
  process.exitCode = 2;
}
