#!/usr/bin/env node
/*
 * A device for the replication tests: a stock PouchDB (the `pouchdb` npm
 * package, in memory) driven by JSON lines on stdin, answering JSON lines on
 * stdout: {"op": "pull"} -> {"ok": true, "result": ...} or {"ok": false, "error": ...}.
 */
'use strict';

const readline = require('readline');
const PouchDB = require('pouchdb').plugin(require('pouchdb-adapter-memory'));

const local = new PouchDB('device-' + process.pid + '-' + Date.now(), { adapter: 'memory' });
let remote = null;
let live = null;
const liveEvents = { changes: 0, errors: [], paused: 0, active: 0, denied: [] };

const summary = (r) => ({
  ok: r.ok, docs_read: r.docs_read, docs_written: r.docs_written,
  doc_write_failures: r.doc_write_failures, errors: (r.errors || []).map(String),
});

const ops = {
  connect({ url, user, password }) {
    remote = new PouchDB(url, { auth: { username: user, password }, skip_setup: true });
    return { connected: url };
  },
  async pull(args) { return summary(await local.replicate.from(remote, args || {})); },
  async push(args) { return summary(await local.replicate.to(remote, args || {})); },
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
