function (doc) {
  /* CHT's medic-sms/messages_by_last_updated_state: per task, [group, last update in ms, state], group being
     scheduled, final (sent, delivered, failed), muted (muted, cleared, denied, duplicate) or else pending
     (monitoring's "last hundred"). */
  var finalStatuses = ['sent', 'delivered', 'failed'];
  var mutedStatuses = ['muted', 'cleared', 'denied', 'duplicate'];
  var emitTasks = function (tasks) {
    tasks.forEach(function (task) {
      var history = task.state_history && task.state_history[task.state_history.length - 1];
      var lastUpdated = new Date(history && history.timestamp || task.timestamp || doc.reported_date).getTime();
      var statusGroup = 'pending';
      if (task.state === 'scheduled') {
        statusGroup = 'scheduled';
      } else if (finalStatuses.indexOf(task.state) > -1) {
        statusGroup = 'final';
      } else if (mutedStatuses.indexOf(task.state) > -1) {
        statusGroup = 'muted';
      }
      emit([statusGroup, lastUpdated, task.state]);
    });
  };
  emitTasks(doc.tasks || []);
  emitTasks(doc.scheduled_tasks || []);
}
