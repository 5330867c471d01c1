/* adapters/adapter.c — placeholder until the adapter work lands. */
typedef int adapter_translation_unit_not_empty;
