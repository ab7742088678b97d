/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "lsc-mapped-file.h"
#include "lsc-error.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

LscMappedFile *
lsc_mapped_file_open (const char *path, GError **error)
{
  struct stat st;
  int fd;

  g_return_val_if_fail (path != NULL, NULL);

  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    {
      int saved = errno;
      g_set_error (error, LSC_MODEL_ERROR,
                   saved == ENOENT ? LSC_MODEL_ERROR_NOT_FOUND : LSC_MODEL_ERROR_IO,
                   "%s: cannot open: %s", path, g_strerror (saved));
      return NULL;
    }
  if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode))
    {
      int saved = errno;
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_IO, "%s: %s", path,
                   S_ISDIR (st.st_mode) ? "is a directory, expected a file" : g_strerror (saved));
      close (fd);
      return NULL;
    }

  LscMappedFile *file = g_new0 (LscMappedFile, 1);
  file->path = g_strdup (path);
  file->size = (guint64) st.st_size;
  if (file->size > 0)
    {
      void *p = mmap (NULL, file->size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED)
        {
          int saved = errno;
          g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_IO, "%s: cannot map %" G_GUINT64_FORMAT
                       " bytes: %s", path, file->size, g_strerror (saved));
          close (fd);
          g_free (file->path);
          g_free (file);
          return NULL;
        }
      file->data = p;
    }
  close (fd);
  return file;
}

void
lsc_mapped_file_free (LscMappedFile *file)
{
  if (file == NULL)
    return;
  if (file->data != NULL)
    munmap ((void *) file->data, file->size);
  g_free (file->path);
  g_free (file);
}

LscMappedFile *
lsc_mapped_file_new_anonymous (const char *name, guint64 size, guint8 **data, GError **error)
{
  void *p = size > 0 ? mmap (NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                             -1, 0)
                     : NULL;
  if (p == MAP_FAILED)
    {
      g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_IO,
                   "%s: cannot map %.1f MiB of anonymous memory", name, size / 1048576.0);
      return NULL;
    }
  LscMappedFile *file = g_new0 (LscMappedFile, 1);
  file->path = g_strdup (name);
  file->data = p;
  file->size = size;
  *data = p;
  return file;
}

void
lsc_mapped_file_seal (LscMappedFile *file)
{
  if (file->data != NULL)
    mprotect ((void *) file->data, file->size, PROT_READ);
}

gboolean
lsc_mapped_file_has_range (const LscMappedFile *file, guint64 offset, guint64 size)
{
  return offset <= file->size && size <= file->size - offset;
}

gboolean
lsc_mapped_file_check_range (const LscMappedFile *file, guint64 offset, guint64 size,
                             const char *what, GError **error)
{
  if (lsc_mapped_file_has_range (file, offset, size))
    return TRUE;
  g_set_error (error, LSC_MODEL_ERROR, LSC_MODEL_ERROR_TRUNCATED,
               "%s: %s: bytes %" G_GUINT64_FORMAT "..+%" G_GUINT64_FORMAT
               " are past the end of the file (%" G_GUINT64_FORMAT " bytes)",
               file->path, what, offset, size, file->size);
  return FALSE;
}
