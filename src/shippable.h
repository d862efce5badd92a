/*
 * shippable.h
 *		The allow-list of operators and casts Redshift may evaluate.
 */
#ifndef REDSHIFT_FDW_SHIPPABLE_H
#define REDSHIFT_FDW_SHIPPABLE_H

#include "postgres.h"

extern bool redshift_is_shippable_operator(Oid opno, bool *ordering_on_text);
extern bool redshift_is_shippable_cast(Oid source, Oid target);

#endif /* REDSHIFT_FDW_SHIPPABLE_H */
