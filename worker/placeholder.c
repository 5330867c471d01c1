/* worker role: filled in by the foundation work. */
typedef int worker_translation_unit_not_empty;
