function (doc) {
  /* Outgoing messages by their uuid: delivery status updates from the SMS gateway find their doc here. */
  var lists = ['tasks', 'scheduled_tasks'];
  for (var l = 0; l < lists.length; l++) {
    var tasks = doc[lists[l]];
    if (!tasks || !tasks.length) {
      continue;
    }
    for (var t = 0; t < tasks.length; t++) {
      var messages = tasks[t].messages || [];
      for (var m = 0; m < messages.length; m++) {
        if (messages[m].uuid) {
          emit(messages[m].uuid, tasks[t].state);
        }
      }
    }
  }
}
