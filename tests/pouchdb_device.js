#!/usr/bin/env node
/*
 * A device for the replication tests: a stock PouchDB (the `pouchdb` npm
 * package, in memory) driven by JSON lines on stdin, answering JSON lines on
 * stdout: {"op": "pull"} -> {"ok": true, "result": ...} or {"ok": false, "error": ...}.
 */
'use strict';

const readline = require('readline');

// PouchDB sometimes leaves a request's rejection unhandled (its own db-info check when the server drops the
// connection); in an app that is a console error, here it would end the process and the device with it
process.on('unhandledRejection', (err) => console.error('device: unhandled rejection:', String(err)));
const PouchDB = require('pouchdb').plugin(require('pouchdb-adapter-memory'));

const local = new PouchDB('device-' + process.pid + '-' + Date.now(), { adapter: 'memory' });
let remote = null;
let live = null;
let api = null; // { root, headers }: the API the device talks to, for CHT's own endpoints
let metaLocal = null;
let metaRemote = null;
const liveEvents = { changes: 0, errors: [], paused: 0, active: 0, denied: [] };

const summary = (r) => ({
  ok: r.ok, docs_read: r.docs_read, docs_written: r.docs_written,
  doc_write_failures: r.doc_write_failures, errors: (r.errors || []).map(String),
});

const ops = {
  connect({ url, user, password }) {
    remote = new PouchDB(url, { auth: { username: user, password }, skip_setup: true });
    api = {
      root: url.replace(/\/medic\/?$/, ''),
      auth: { username: user, password },
      headers: { Authorization: 'Basic ' + Buffer.from(user + ':' + password).toString('base64'),
                 Accept: 'application/json', 'Content-Type': 'application/json' },
    };
    return { connected: url };
  },
  async pull(args) { return summary(await local.replicate.from(remote, args || {})); },
  async push(args) {
    const options = Object.assign({}, args || {});
    if (options.skip_purged) { // CHT's push filter: a device's local purge records never go up
      delete options.skip_purged;
      options.filter = (doc) => !isPurgeRecord(doc);
    }
    return summary(await local.replicate.to(remote, options));
  },
  async purge({ ids }) { return purgeLocally(local, ids); },
  async cht_sync() { return chtSync(); },
  async legacy_purge({ replication_id }) { return legacyPurge(replication_id); },
  async meta_connect({ name }) {
    metaLocal = new PouchDB('meta-' + process.pid + '-' + Date.now(), { adapter: 'memory' });
    metaRemote = new PouchDB(api.root + '/medic-user-' + name + '-meta', { auth: api.auth });
    return { connected: name };
  },
  async meta_put({ doc }) { return metaLocal.put(doc); },
  async meta_sync() {
    const push = await metaLocal.replicate.to(metaRemote);
    const pull = await metaLocal.replicate.from(metaRemote);
    return { push: summary(push), pull: summary(pull) };
  },
  async meta_ids() { return (await metaLocal.allDocs()).rows.map((row) => row.id).sort(); },
  async ids() { return (await local.allDocs()).rows.map((row) => row.id).sort(); },
  async put({ doc }) { return local.put(doc); },
  async get({ id, options }) { return local.get(id, options || {}); },
  async remove({ id }) { const doc = await local.get(id); return local.remove(doc); },
  async bulk({ docs, options }) { return local.bulkDocs(docs, options || {}); },
  live_start() {
    live = local.sync(remote, { live: true, retry: true, back_off_function: () => 200 });
    live.on('change', () => { liveEvents.changes += 1; })
      .on('paused', () => { liveEvents.paused += 1; })
      .on('active', () => { liveEvents.active += 1; })
      .on('denied', (e) => { liveEvents.denied.push(String(e && e.reason || e)); })
      .on('error', (e) => { liveEvents.errors.push(String(e)); });
    return { started: true };
  },
  live_events() { return liveEvents; },
  live_stop() { if (live) { live.cancel(); live = null; } return { stopped: true }; },
  async remote_get({ id }) { return remote.get(id); },
};

const isPurgeRecord = (doc) => {
  const keys = Object.keys(doc).sort();
  return doc.purged === true && keys.join(',') === '_deleted,_id,_rev,purged';
};

// what CHT's device does with the ids it must purge: a local deletion marked purged
const purgeLocally = async (db, ids) => {
  if (!ids.length) { return { purged: 0 }; }
  const rows = (await db.allDocs({ keys: ids })).rows.filter((row) => row.value && !row.value.deleted);
  await db.bulkDocs(rows.map((row) => ({ _id: row.id, _rev: row.value.rev, _deleted: true, purged: true })));
  return { purged: rows.length };
};

const call = async (method, path, body, headers) => {
  const response = await fetch(api.root + path, {
    method, headers: Object.assign({}, api.headers, headers || {}), body: body && JSON.stringify(body),
  });
  const answer = await response.json();
  if (!response.ok) {
    const error = new Error(method + ' ' + path + ': ' + response.status + ' ' + JSON.stringify(answer));
    error.status = response.status;
    throw error;
  }
  return answer;
};

// CHT 4.3+'s download: get-ids, _bulk_get what is missing, then get-deletes for what it was not told about
const chtSync = async () => {
  const listed = await call('GET', '/api/v1/replication/get-ids');
  const held = new Map((await local.allDocs()).rows.map((row) => [row.id, row.value.rev]));
  const missing = listed.doc_ids_revs.filter((pair) => held.get(pair.id) !== pair.rev);
  let downloaded = 0;
  for (let i = 0; i < missing.length; i += 100) {
    const answer = await call('POST', '/medic/_bulk_get?revs=true', { docs: missing.slice(i, i + 100) });
    const docs = [];
    answer.results.forEach((result) => result.docs.forEach((entry) => entry.ok && docs.push(entry.ok)));
    await local.bulkDocs(docs, { new_edits: false });
    downloaded += docs.length;
  }
  const ids = new Set(listed.doc_ids_revs.map((pair) => pair.id));
  const unknown = [...held.keys()].filter((id) => !ids.has(id));
  const gone = [];
  for (let i = 0; i < unknown.length; i += 100) {
    gone.push(...(await call('POST', '/api/v1/replication/get-deletes', { doc_ids: unknown.slice(i, i + 100) }))
      .doc_ids);
  }
  const purged = (await purgeLocally(local, gone)).purged;
  return { downloaded, purged, purged_ids: gone.sort() };
};

// CHT 3.7-4.2's: /purging/changes, purge, /purging/checkpoint, until nothing is left
const legacyPurge = async (replicationId) => {
  const headers = { 'medic-replication-id': replicationId };
  const info = await call('GET', '/purging', undefined, headers);
  if (!info) { return { purged: 0, rounds: 0 }; }
  let purged = 0;
  let rounds = 0;
  for (;;) {
    const page = await call('GET', '/purging/changes?limit=1000', undefined, headers);
    rounds += 1;
    if (!page.purged_ids || !page.purged_ids.length) { return { purged, rounds }; }
    purged += (await purgeLocally(local, page.purged_ids)).purged;
    await call('GET', '/purging/checkpoint?seq=' + encodeURIComponent(page.last_seq), undefined, headers);
  }
};

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  let answer;
  try {
    const command = JSON.parse(line);
    const result = await ops[command.op](command.args || {});
    answer = { ok: true, result: result === undefined ? null : result };
  } catch (e) {
    answer = { ok: false, error: String(e && (e.message || e.reason || e.name) || e), status: e && e.status };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
});
rl.on('close', () => process.exit(0));
