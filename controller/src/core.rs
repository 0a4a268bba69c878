//! Pure reconcile decisions: observed objects in, plans out.
