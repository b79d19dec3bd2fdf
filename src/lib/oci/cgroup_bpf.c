#include "cgroup.h"
