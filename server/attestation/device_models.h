/*
 * device_models: which Apple devices can give a Managed Device Attestation, from what they say of
 * themselves (ProductName, OS version).
 *
 * The one place that holds Apple's hardware list: iOS, iPadOS and tvOS 16 or later on an iPhone
 * or iPad with an A11 Bionic or later (iPhone10,x and up; iPad8,x and up, the iPad7,x being A10
 * and A10X) or an Apple TV with an A12 or later (AppleTV11,1 and up). A device that can attest
 * and answers without an attestation has withheld it; one that cannot is "unsupported".
 *
 * Pure: no I/O. What a device claims here is unproven, so this decides only how an answer without
 * an attestation is read; a verified attestation always says more.
 */
#ifndef VOUCH_DEVICE_MODELS_H
#define VOUCH_DEVICE_MODELS_H

#include <stdbool.h>

/* Whether a device of this ProductName ("iPhone15,2") running this OS version ("17.5.1") can
 * attest. NULL or unrecognised values: false (nothing is known that says it can). */
bool device_model_can_attest(const char *product_name, const char *os_version);

#endif
