// Open MPI's C API for Swift. MPI's predefined handles (MPI_COMM_WORLD, MPI_BYTE, MPI_SUM,
// MPI_STATUS_IGNORE, …) are macros over the addresses of library globals, which Swift cannot
// import; these static inline functions return them.
#ifndef POLYCHIP_CMPI_SHIM_H
#define POLYCHIP_CMPI_SHIM_H

#include <mpi.h>

static inline MPI_Comm pc_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm pc_mpi_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Datatype pc_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype pc_mpi_int(void) { return MPI_INT; }
static inline MPI_Datatype pc_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype pc_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype pc_mpi_long_long(void) { return MPI_LONG_LONG; }
static inline MPI_Op pc_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op pc_mpi_max(void) { return MPI_MAX; }
static inline MPI_Errhandler pc_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Request pc_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *pc_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Status *pc_mpi_statuses_ignore(void) { return MPI_STATUSES_IGNORE; }
static inline void *pc_mpi_in_place(void) { return MPI_IN_PLACE; }

#endif
