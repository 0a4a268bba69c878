//! CustomResourceDefinition generation (filled in by the CRD generator work).
