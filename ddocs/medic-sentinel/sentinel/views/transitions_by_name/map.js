function (doc) {
  /* Transition runs recorded in info docs, by transition name and outcome (Prometheus counts them). */
  if (doc.type !== 'info' || !doc.transitions) {
    return;
  }
  for (var name in doc.transitions) {
    var run = doc.transitions[name];
    if (run) {
      emit([name, run.ok === false ? 'failed' : 'ok'], null);
    }
  }
}
