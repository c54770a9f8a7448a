function (doc) {
  // key: what a doc belongs to (a contact id, a short id, a user) or '_all' for docs every
  // user gets; the replication code mirrors this in api/cht/visibility.py (replication_keys)
  var globalIds = ['resources', 'branding', 'partners', 'service-worker-meta', 'zscore-charts',
                   'settings', 'privacy-policies'];
  if (globalIds.indexOf(doc._id) !== -1 || doc.type === 'form' || doc.type === 'translations') {
    emit('_all', {});
    return;
  }
  var present = function (value) {
    return value !== undefined && value !== null && value !== '' &&
      (typeof value === 'string' || typeof value === 'number');
  };
  var subjectOf = function () {
    var fields = doc.fields || {};
    var contact = doc.contact || {};
    if (doc.form) {
      var errors = doc.errors || [];
      for (var i = 0; i < errors.length; i++) {
        if (contact._id && errors[i] &&
            (errors[i].code === 'registration_not_found' || errors[i].code === 'invalid_patient_id')) {
          return contact._id;
        }
      }
      var candidates = [doc.patient_id, fields.patient_id, doc.place_id, fields.place_id,
                        fields.patient_uuid, contact._id];
      for (var j = 0; j < candidates.length; j++) {
        if (present(candidates[j])) {
          return String(candidates[j]);
        }
      }
      return null;
    }
    if (doc.sms_message) {
      return contact._id || null;
    }
    if (doc.kujua_message) {
      var task = doc.tasks && doc.tasks[0];
      var message = task && task.messages && task.messages[0];
      return (message && message.contact && message.contact._id) || null;
    }
    return null;
  };
  var value = { type: doc.type };
  switch (doc.type) {
    case 'data_record':
      value.subject = subjectOf() || '_unassigned';
      if (doc.form && doc.contact && doc.contact._id) {
        value.submitter = doc.contact._id;
      }
      if (doc.fields && doc.fields.private) {
        value.private = true;
      }
      if (doc.fields && doc.fields.needs_signoff && doc.contact) {
        value.needs_signoff = true;
        emit(value.subject, value);
        var node = doc.contact;
        var guard = 0;
        while (node && guard < 64) {
          if (node._id && node._id !== value.subject) {
            emit(node._id, value);
          }
          node = node.parent;
          guard++;
        }
        return;
      }
      emit(value.subject, value);
      return;
    case 'task':
      if (doc.user) {
        emit(doc.user, value);
      }
      return;
    case 'target':
      if (doc.owner) {
        emit(doc.owner, value);
      }
      return;
    case 'contact':
    case 'clinic':
    case 'district_hospital':
    case 'health_center':
    case 'person':
      emit(doc._id, value);
      return;
  }
}
