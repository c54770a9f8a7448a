function (newDoc, oldDoc, userCtx) {
  /*
   * Defence in depth: the API is the gatekeeper, but a write that reaches
   * CouchDB directly from a non-admin is refused here too.
   */
  var roles = userCtx.roles || [];
  if (roles.indexOf('_admin') !== -1 || roles.indexOf('admin') !== -1) {
    return;
  }
  var id = newDoc._id || '';
  var type = newDoc.type || (oldDoc && oldDoc.type);
  if (id.indexOf('_design/') === 0) {
    throw({ forbidden: 'Only admins may change design documents' });
  }
  if (id === 'settings' || id === 'resources' || id === 'branding' || id === 'partners' ||
      id.indexOf('messages-') === 0 || type === 'form' || type === 'translations') {
    throw({ forbidden: 'Only admins may change configuration documents' });
  }
  if (type === 'user-settings' && newDoc.name !== userCtx.name) {
    throw({ forbidden: 'Users may only change their own settings' });
  }
}
