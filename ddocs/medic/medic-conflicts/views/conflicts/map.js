function (doc) {
  if (doc._conflicts && doc._conflicts.length) {
    emit(doc._conflicts.length, doc._conflicts);
  }
}
