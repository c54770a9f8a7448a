function (doc) {
  /* Every outgoing message by [state, due or last state change]; the SMS gateway, the due-messages job,
     monitoring and the messages export read it. Value: what the gateway needs to send it. */
  var lists = ['tasks', 'scheduled_tasks'];
  for (var l = 0; l < lists.length; l++) {
    var tasks = doc[lists[l]];
    if (!tasks || !tasks.length) {
      continue;
    }
    for (var t = 0; t < tasks.length; t++) {
      var task = tasks[t];
      var history = task.state_history || [];
      var changed = history.length ? history[history.length - 1].timestamp : doc.reported_date;
      var when = task.state === 'scheduled' && task.due ? task.due : changed;
      var messages = task.messages || [];
      for (var m = 0; m < messages.length; m++) {
        emit([task.state, when], { id: messages[m].uuid, to: messages[m].to, content: messages[m].message });
      }
    }
  }
}
