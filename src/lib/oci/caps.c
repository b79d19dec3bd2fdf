#include "caps.h"
