/* Unit tests of server/attestation/device_models.c: Apple's list of the hardware that attests. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>

#include "device_models.h"

static void check(const char *product, const char *os, bool expected)
{
    if (device_model_can_attest(product, os) != expected)
        fail_msg("%s on %s: expected %s", product ? product : "(null)", os ? os : "(null)",
                 expected ? "can attest" : "cannot attest");
}

static void test_the_first_of_each_family(void **state)
{
    (void)state;
    check("iPhone10,1", "16.0", true);   /* iPhone 8, A11 */
    check("iPhone10,4", "16.7.10", true);
    check("iPhone9,3", "16.0", false);   /* iPhone 7, A10 */
    check("iPad8,1", "16.1", true);      /* iPad Pro (3rd generation), A12X */
    check("iPad7,11", "16.7.8", false);  /* iPad (7th generation), A10 */
    check("iPad7,1", "16.0", false);     /* iPad Pro (2nd generation), A10X */
    check("AppleTV11,1", "17.4", true);  /* Apple TV 4K (2nd generation), A12 */
    check("AppleTV6,2", "17.2", false);  /* Apple TV 4K (1st generation), A10X */
    check("AppleTV5,3", "16.6", false);  /* Apple TV HD, A8 */
}

static void test_later_models_and_versions(void **state)
{
    (void)state;
    check("iPhone17,3", "18.1", true);
    check("iPad16,6", "18.0", true);
    check("AppleTV14,1", "26.0", true);
    check("iPhone15,2", "17", true);
}

static void test_os_before_16(void **state)
{
    (void)state;
    check("iPhone15,2", "15.8", false);
    check("iPhone10,4", "9.3", false);
    check("AppleTV14,1", "15.0", false);
}

static void test_unknown_or_malformed(void **state)
{
    (void)state;
    check(NULL, "17.5", false);
    check("iPhone15,2", NULL, false);
    check("Mac14,2", "14.4.1", false); /* not in this list: Macs attest through ACME */
    check("Watch6,1", "10.0", false);
    check("iPhone", "17.5", false);
    check("iPhone15", "17.5", false);
    check("iPhone15,", "17.5", false);
    check("iPhone15x2", "17.5", false);
    check("iphone15,2", "17.5", false);
    check("iPhone15,2", "", false);
    check("iPhone15,2", "seventeen", false);
    check("iPhone15,2", "17x", false);
    /* Numbers no device has are not recognised (and never overflow). */
    check("iPhone99999999999999999999,1", "17.5", false);
    check("iPhone15,2", "99999999999999999999", false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_first_of_each_family),
        cmocka_unit_test(test_later_models_and_versions),
        cmocka_unit_test(test_os_before_16),
        cmocka_unit_test(test_unknown_or_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
