#!/usr/bin/env node
/*
 * Compiles design-doc functions without running them, so a syntax error is
 * reported at upload time (pouchdb-server would silently return no rows).
 * stdin: JSON {"path": "source", ...}; stdout: JSON {"path": "error", ...}.
 */
'use strict';

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const sources = JSON.parse(input);
  const problems = {};
  Object.keys(sources).forEach((path) => {
    try {
      const fn = new Function('return (' + sources[path] + '\n);')();
      if (typeof fn !== 'function') {
        problems[path] = 'is not a function';
      }
    } catch (e) {
      problems[path] = e.name + ': ' + e.message;
    }
  });
  process.stdout.write(JSON.stringify(problems));
});
