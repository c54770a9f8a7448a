function (doc) {
  /* Every outgoing message by the time of its last state change (monitoring's "last hundred"). */
  var lists = ['tasks', 'scheduled_tasks'];
  for (var l = 0; l < lists.length; l++) {
    var tasks = doc[lists[l]];
    if (!tasks || !tasks.length) {
      continue;
    }
    for (var t = 0; t < tasks.length; t++) {
      var history = tasks[t].state_history || [];
      if (!history.length) {
        continue;
      }
      var messages = tasks[t].messages || [];
      for (var m = 0; m < messages.length; m++) {
        emit(history[history.length - 1].timestamp, tasks[t].state);
      }
    }
  }
}
