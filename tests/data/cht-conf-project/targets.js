module.exports = [
  {
    id: 'pregnancies-registered',
    type: 'count',
    icon: 'icon-pregnancy',
    goal: -1,
    translation_key: 'pregnancy.registered',
    appliesTo: 'reports',
    appliesToType: ['pregnancy'],
    date: 'reported'
  }
];
