/* scheduler role: filled in by the foundation work. */
typedef int scheduler_translation_unit_not_empty;
