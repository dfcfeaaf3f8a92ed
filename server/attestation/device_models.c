/* device_models: Apple's list of the hardware that attests (see device_models.h). */
#include "device_models.h"

#include <stddef.h>
#include <string.h>

#define MIN_OS_MAJOR 16 /* iOS 16, iPadOS 16, tvOS 16 */

/* The first model number of each family with the chip Apple requires. */
static const struct {
    const char *family;
    long first_major;
} attesting_families[] = {
    {"iPhone", 10},  /* iPhone10,1: iPhone 8, A11 Bionic */
    {"iPad", 8},     /* iPad8,1: iPad Pro (3rd generation), A12X; iPad7,x are A10 and A10X */
    {"AppleTV", 11}, /* AppleTV11,1: Apple TV 4K (2nd generation), A12; AppleTV6,2 is A10X */
};

/* The leading decimal number of s, or -1 when s does not start with a digit. Reading stops past
 * 100000, so a longer number leaves *end on a digit, and is not recognised. */
static long leading_number(const char *s, const char **end)
{
    long n = -1;
    for (; *s >= '0' && *s <= '9' && n < 100000; s++)
        n = (n < 0 ? 0 : n * 10) + (*s - '0');
    *end = s;
    return n;
}

bool device_model_can_attest(const char *product_name, const char *os_version)
{
    if (product_name == NULL || os_version == NULL)
        return false;
    const char *end;
    long os_major = leading_number(os_version, &end);
    if (os_major < MIN_OS_MAJOR || (*end != '\0' && *end != '.'))
        return false;
    for (size_t i = 0; i < sizeof(attesting_families) / sizeof(attesting_families[0]); i++) {
        size_t len = strlen(attesting_families[i].family);
        if (strncmp(product_name, attesting_families[i].family, len) != 0)
            continue;
        long major = leading_number(product_name + len, &end);
        /* "iPhone10,4": the model number, a comma, the variant. */
        return major >= attesting_families[i].first_major && *end == ',' &&
               end[1] >= '0' && end[1] <= '9';
    }
    return false;
}
