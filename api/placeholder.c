/* api role: filled in by the foundation work. */
typedef int api_translation_unit_not_empty;
