function (doc) {
  if (doc.type !== 'info' || !doc.transitions) {
    return;
  }
  for (var name in doc.transitions) {
    var run = doc.transitions[name];
    if (run && run.ok === false && typeof run.next_retry === 'number') {
      emit(run.next_retry, { doc_id: doc.doc_id, transition: name });
    }
  }
}
