function (doc) {
  // key: what a doc belongs to (a contact id or short id, a user) or '_all' for docs every user
  // gets, as cht-core's medic/docs_by_replication_key; api/cht/visibility.py (replication_keys)
  // computes the same rows in Python and a test compares the two
  var globalIds = ['resources', 'branding', 'partners', 'service-worker-meta', 'zscore-charts',
                   'settings', 'privacy-policies', 'extension-libs'];
  var globalTypes = ['form', 'translations', 'ui-extension'];
  if (globalIds.indexOf(doc._id) !== -1 || globalTypes.indexOf(doc.type) !== -1) {
    emit('_all', {});
    return;
  }
  // keys are any truthy value, as strings (cht-core indexes them so)
  var key = function (value) {
    return value ? String(value) : null;
  };
  var isTrue = function (value) {
    return value === true || value === 'true';
  };
  var fields = doc.fields && typeof doc.fields === 'object' && !Array.isArray(doc.fields) ? doc.fields : {};
  var contact = doc.contact && typeof doc.contact === 'object' && !Array.isArray(doc.contact) ? doc.contact : {};
  var subjectOf = function () {
    if (doc.form) {
      var errors = Array.isArray(doc.errors) ? doc.errors : [];
      for (var i = 0; i < errors.length; i++) {
        if (doc.contact && errors[i] &&
            (errors[i].code === 'registration_not_found' || errors[i].code === 'invalid_patient_id')) {
          return key(contact._id);
        }
      }
      var candidates = [doc.patient_id, fields.patient_id, doc.place_id, fields.place_id,
                        fields.patient_uuid, contact._id];
      for (var j = 0; j < candidates.length; j++) {
        if (candidates[j]) {
          return key(candidates[j]);
        }
      }
      return null;
    }
    if (doc.sms_message) {
      return key(contact._id);
    }
    if (doc.kujua_message) {
      var task = Array.isArray(doc.tasks) ? doc.tasks[0] : null;
      var messages = task && typeof task === 'object' && Array.isArray(task.messages) ? task.messages : [];
      var message = messages[0];
      var to = message && typeof message === 'object' ? message.contact : null;
      return to && typeof to === 'object' && !Array.isArray(to) ? key(to._id) : null;
    }
    return null;
  };
  var value = { type: doc.type };
  switch (doc.type) {
    case 'data_record':
      value.subject = subjectOf() || '_unassigned';
      if (doc.form && key(contact._id)) {
        value.submitter = key(contact._id);
      }
      if (isTrue(fields.private)) {
        value.private = true;
      }
      if (!isTrue(fields.needs_signoff) || !doc.contact) {
        emit(value.subject, value);
        return;
      }
      value.needs_signoff = true;
      emit(value.subject, value);
      var node = doc.contact;
      for (var guard = 0; guard < 64 && node && typeof node === 'object'; guard++) {
        if (key(node._id) && key(node._id) !== value.subject) {
          emit(key(node._id), value);
        }
        node = node.parent;
      }
      return;
    case 'task':
      if (key(doc.user)) {
        emit(key(doc.user), value);
      }
      return;
    case 'target':
      if (key(doc.owner)) {
        emit(key(doc.owner), value);
      }
      return;
    case 'contact':
    case 'clinic':
    case 'district_hospital':
    case 'health_center':
    case 'person':
      if (key(doc._id)) {
        emit(key(doc._id), value);
      }
      return;
  }
}
