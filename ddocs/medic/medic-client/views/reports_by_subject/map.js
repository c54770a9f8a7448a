function (doc) {
  if (doc.type !== 'data_record' || !doc.form) {
    return;
  }
  var seen = {};
  var add = function (value) {
    if (value && (typeof value === 'string' || typeof value === 'number') && !seen[value]) {
      seen[value] = true;
      emit(String(value), doc.reported_date);
    }
  };
  var fields = doc.fields || {};
  add(doc.patient_id);
  add(doc.place_id);
  add(doc.case_id);
  add(fields.patient_id);
  add(fields.place_id);
  add(fields.case_id);
  add(fields.patient_uuid);
  add(fields.place_uuid);
}
