module.exports = [
  {
    name: 'pregnancy-follow-up',
    title: 'Pregnancy follow up',
    appliesTo: 'reports',
    appliesToType: ['pregnancy'],
    actions: [{ form: 'pregnancy' }],
    events: [{ days: 7, start: 1, end: 3 }]
  }
];
