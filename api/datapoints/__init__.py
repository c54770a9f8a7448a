"""The datapoints API (RhizomeDB's polio-campaign indicators) on CouchDB.

Modules: ``model`` (resources and fields), ``query`` (filters to Mango,
keyset paging), ``records`` (id allocation, records shown), ``access`` (the
caller's profile and region-tree permissions), ``writes`` (v2 POST),
``entry`` (stored values, ``/api/v1/dataentry``), ``aggregate`` (values up the
region tree, ``/api/v1/datapoint``), ``service`` (parameters and paging for
the handlers), ``tastypie`` (the ``/api/v1/`` root and resource schemas).
"""
