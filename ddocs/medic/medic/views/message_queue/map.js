function (doc) {
  /* CHT's medic-admin/message_queue keys (monitoring's message counts): per message of every task, [K, due]
     where K is scheduled, muted (muted, cleared, denied, duplicate) or else due, and again [delivered, due]
     (sent, delivered) or [failed, due]; due = the task's due, else its timestamp, else the doc's
     reported_date. Only the counts are read, so no value. */
  var mutedStatuses = ['muted', 'cleared', 'denied', 'duplicate'];
  var successStatuses = ['delivered', 'sent'];
  var emitKeys = function (keys) {
    keys.forEach(function (key) {
      if (key && key[0]) {
        emit(key, null);
      }
    });
  };
  var emitTasks = function (tasks) {
    tasks.forEach(function (task) {
      var due = new Date(task.due || task.timestamp || doc.reported_date).getTime();
      var dueMutedKey = ['due', due];
      var deliveredFailureKey = [undefined, due];
      if (task.state === 'scheduled') {
        dueMutedKey[0] = 'scheduled';
      } else if (mutedStatuses.indexOf(task.state) > -1) {
        dueMutedKey[0] = 'muted';
      }
      if (successStatuses.indexOf(task.state) > -1) {
        deliveredFailureKey[0] = 'delivered';
      }
      if (task.state === 'failed') {
        deliveredFailureKey[0] = 'failed';
      }
      if (task.messages) {
        task.messages.forEach(function (msg) {
          if (msg.uuid && msg.to && msg.message) {
            emitKeys([dueMutedKey, deliveredFailureKey]);
          }
        });
      } else {
        emitKeys([dueMutedKey, deliveredFailureKey]);
      }
    });
  };
  emitTasks(doc.tasks || []);
  emitTasks(doc.scheduled_tasks || []);
}
