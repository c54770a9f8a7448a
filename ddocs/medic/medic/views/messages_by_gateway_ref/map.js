function (doc) {
  /* Outgoing messages by the reference an SMS aggregator gave them (value: the message uuid), so the
     aggregator's delivery reports and status polls find their message. */
  var lists = ['tasks', 'scheduled_tasks'];
  for (var l = 0; l < lists.length; l++) {
    var tasks = doc[lists[l]];
    if (!tasks || !tasks.length) {
      continue;
    }
    for (var t = 0; t < tasks.length; t++) {
      var task = tasks[t];
      if (task.gateway_ref === undefined || task.gateway_ref === null || task.gateway_ref === '') {
        continue;
      }
      var messages = task.messages || [];
      for (var m = 0; m < messages.length; m++) {
        emit(String(task.gateway_ref), messages[m].uuid);
      }
    }
  }
}
