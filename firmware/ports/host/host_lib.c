/* libedgespike_host.so: the C core (and its flat runner entry point) for the SDK's ctypes
 * binding (edgespike.sim). This file only adds a version probe; the rest is es_core. */
#include <stdint.h>

#include "es_link.h"

/* Protocol version the library was built for; lets the SDK check it loaded the right file. */
uint32_t es_host_protocol_version(void);

uint32_t es_host_protocol_version(void)
{
    return ES_PROTOCOL_VERSION;
}
