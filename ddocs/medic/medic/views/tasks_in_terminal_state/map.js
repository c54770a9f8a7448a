function (doc) {
  // tasks that ended (cancelled, completed or failed), by their emission's end date: the purge job
  // purges those that ended 60 days ago or more, as cht-core's view of the same name serves it
  if (doc.type === 'task' && doc.emission &&
      ['Cancelled', 'Completed', 'Failed'].indexOf(doc.state) !== -1) {
    emit(doc.emission.endDate);
  }
}
