// fake-indexeddb's "./auto" entry (installs the globals) ships no types of its own; it exports nothing.
declare module "fake-indexeddb/auto";
