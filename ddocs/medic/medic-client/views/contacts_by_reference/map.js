function (doc) {
  var types = ['contact', 'district_hospital', 'health_center', 'clinic', 'national_office', 'person'];
  if (types.indexOf(doc.type) === -1) {
    return;
  }
  if (doc.patient_id) {
    emit(['shortcode', String(doc.patient_id)], doc.reported_date);
  }
  if (doc.place_id) {
    emit(['shortcode', String(doc.place_id)], doc.reported_date);
  }
  if (doc.rc_code) {
    // external references come from SMS: matched without regard to case
    emit(['external', String(doc.rc_code).toUpperCase()], doc.reported_date);
  }
}
