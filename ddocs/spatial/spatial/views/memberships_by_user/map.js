function (doc) {
  var name;
  if ((doc.doc_type === 'organization' || doc.doc_type === 'project') && doc.members) {
    for (name in doc.members) {
      if (doc.members.hasOwnProperty(name)) {
        emit([name, doc.doc_type === 'organization' ? doc.slug : doc.organization],
             {role: doc.members[name], project: doc.doc_type === 'project' ? doc.slug : null});
      }
    }
  }
}
