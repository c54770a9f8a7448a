function (doc) {
  // the users API's lookups: ['facility_id', id] (one row per facility), ['contact_id', id],
  // ['oidc_username', name] (which must be unique)
  if (doc.type !== 'user' || !doc._id || doc._id.indexOf('org.couchdb.user:') !== 0) {
    return;
  }
  var facilities = Array.isArray(doc.facility_id) ? doc.facility_id : [doc.facility_id];
  for (var i = 0; i < facilities.length; i++) {
    if (facilities[i]) {
      emit(['facility_id', facilities[i]]);
    }
  }
  if (doc.contact_id) {
    emit(['contact_id', doc.contact_id]);
  }
  if (doc.oidc_username) {
    emit(['oidc_username', doc.oidc_username]);
  }
}
