function (doc) {
  /* Contacts with a DHIS2 organisation unit (dhis: {orgUnit, dataSet?} or a list of them), by orgUnit. */
  var types = ['contact', 'person', 'clinic', 'health_center', 'district_hospital'];
  if (types.indexOf(doc.type) === -1 || !doc.dhis) {
    return;
  }
  var configs = Object.prototype.toString.call(doc.dhis) === '[object Array]' ? doc.dhis : [doc.dhis];
  for (var i = 0; i < configs.length; i++) {
    if (configs[i] && typeof configs[i].orgUnit === 'string' && configs[i].orgUnit) {
      emit(configs[i].orgUnit, null);
    }
  }
}
