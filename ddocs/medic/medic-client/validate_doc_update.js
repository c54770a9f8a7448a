function (newDoc, oldDoc, userCtx) {
  /*
   * Defence in depth: the API is the gatekeeper (api/cht/replication/write_rules.py holds the
   * same rules, and a test keeps the two in step), but a write that reaches
   * CouchDB directly from a non-admin is refused here too.
   */
  var roles = userCtx.roles || [];
  if (roles.indexOf('_admin') !== -1 || roles.indexOf('admin') !== -1) {
    return;
  }
  var id = newDoc._id || '';
  var docs = [newDoc, oldDoc];
  var configIds = ['settings', 'resources', 'branding', 'partners', 'privacy-policies',
                   'service-worker-meta', 'zscore-charts'];
  var isType = function (type) {
    for (var i = 0; i < docs.length; i++) {
      if (docs[i] && docs[i].type === type) {
        return true;
      }
    }
    return false;
  };
  if (id.indexOf('_design/') === 0) {
    throw({ forbidden: 'Only admins may change design documents' });
  }
  if (configIds.indexOf(id) !== -1 || id.indexOf('messages-') === 0 || isType('form') || isType('translations')) {
    throw({ forbidden: 'Only admins may change configuration documents' });
  }
  var prefix = 'org.couchdb.user:';
  if (id.indexOf(prefix) === 0 || isType('user-settings')) {
    var owner = id.indexOf(prefix) === 0 ? id.substring(prefix.length) : userCtx.name;
    for (var d = 0; d < docs.length; d++) {
      if (docs[d] && docs[d].name !== undefined && docs[d].name !== userCtx.name) {
        throw({ forbidden: 'Users may only change their own settings' });
      }
    }
    if (owner !== userCtx.name) {
      throw({ forbidden: 'Users may only change their own settings' });
    }
  }
}
